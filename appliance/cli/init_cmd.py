"""`presence-appliance init`: ask what only the user knows, check the Pi, write a vaulted inventory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import click

from appliance.cli.common import EXIT_INVALID, EXIT_USAGE, fail, no_traceback
from appliance.init_answers import (
    CAMERA_SOURCES,
    Answers,
    AnswersError,
    check_answers,
    load_answers,
)
from appliance.inventory import default_inventory_path


def _status(check: Any) -> str:
    from appliance.doctor import printable

    label = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}[check.status]
    # The Pi's answers (its OS name, ssh's complaint) are not trusted on a terminal.
    line = f"  {label:<4}  {check.name:<7} {printable(check.message)}"
    if check.fix and check.status != "ok":
        line += f"  -> {check.fix}"
    return line


def _ask(answers: Answers, yes: bool) -> None:
    """Prompt for what is still missing (or, with --yes, refuse with the key to give)."""

    def need(key: str, flag: str, prompt: str, **kw: Any) -> None:
        if getattr(answers, key) not in (None, ""):
            return
        if yes:
            fail(f"{key}: missing (give {flag} or `{key}:` in the answers file)", EXIT_USAGE)
        setattr(answers, key, click.prompt(prompt, **kw))

    need("pi_address", "--pi-address", "The Pi's address on your network (IP or host name)")
    need("ssh_user", "--ssh-user", "The SSH user on the Pi", default="pi")
    need("country", "--country", "The country the Pi is in (two letters, e.g. DE, FR, GB, US)")
    if answers.cameras_from is None:
        if yes:
            answers.cameras_from = "token" if answers.netatmo_token else "later"
        else:
            click.echo(
                "How to find the cameras: token (a Netatmo access token), file (a saved "
                "/api/gethomedata answer), manual (type MAC and secure id), later (add them "
                "when they join the Pi's Wi-Fi)"
            )
            answers.cameras_from = click.prompt(
                "Cameras from", type=click.Choice(CAMERA_SOURCES), default="later"
            )
    if answers.cameras_from == "token":
        need("netatmo_token", "--netatmo-token", "Netatmo access token", hide_input=True)
    elif answers.cameras_from == "file":
        need("gethomedata", "--gethomedata", "Saved /api/gethomedata answer (a JSON file)")
    elif answers.cameras_from == "manual" and not answers.cameras and not yes:
        while True:
            name = click.prompt("Camera name (empty when done)", default="", show_default=False)
            if not name:
                break
            mac = click.prompt(f"  {name}: MAC address (70:ee:50:...)")
            secure_id = click.prompt(f"  {name}: secure id", hide_input=True)
            answers.cameras.append({"name": name, "mac": mac, "secure_id": secure_id})


def _validate_text(path: Path, text: str, vault_password_file: str) -> list[str]:
    """Schema errors of TEXT as the inventory at PATH (checked in a temp file next to it)."""
    from appliance.inventory import InventoryError, load_inventory
    from appliance.schema import errors, validate

    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.init-", suffix=".yml")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        try:
            inventory = load_inventory(tmp, vault_password_file)
        except InventoryError as err:
            return [str(err).replace(str(tmp), str(path))]
        return [str(p) for p in errors(validate(inventory))]
    finally:
        tmp.unlink(missing_ok=True)


def _summary(proposal: Any, cameras: list[dict[str, Any]], notes: list[str]) -> None:
    group = proposal.group_vars
    net = group["camera_network"]
    wifi = group["wifi"]
    web = group["web"]
    host = proposal.host_vars
    click.echo("\nThe inventory will say:")
    click.echo(
        f"  Pi             {proposal.host_name}: {host.get('ansible_user')}@{host['ansible_host']}"
    )
    click.echo(
        f"  Wi-Fi          SSID {wifi['ssid']!r}, country {wifi['country']}, channel "
        f"{wifi['channel']}, a new 24-character passphrase"
    )
    click.echo(
        f"  camera network {net['address']} on {net['interface']}, DHCP "
        f"{net['dhcp_range'][0]}-{net['dhcp_range'][1]}; home network on "
        f"{group['uplink_interface']}"
    )
    click.echo(f"  time from      {', '.join(group['ntp_upstream'])}")
    click.echo(
        f"  dashboard      https://{web['server_name']}/ (or the Pi's address), user "
        f"{web['users'][0]['name']} with a new password"
    )
    if cameras:
        for cam in cameras:
            click.echo(f"  camera         {cam['name']} {cam['mac']} at {cam['ip']} (cloud: block)")
    else:
        click.echo("  cameras        none yet (add them when they join the Wi-Fi)")
    for note in notes:
        click.echo(f"  note: {note}")


@click.command()
@click.option(
    "-i",
    "--inventory",
    "inventory_path",
    type=click.Path(dir_okay=False),
    default=default_inventory_path,
    show_default="./inventory.yml or $PRESENCE_INVENTORY",
    help="The inventory file to write.",
)
@click.option("--answers", type=click.Path(dir_okay=False), help="A YAML file of answers.")
@click.option("--pi-address", help="The Pi's address on your network.")
@click.option("--ssh-user", help="The SSH user on the Pi.")
@click.option("--ssh-key", help="The SSH private key file (default: ssh's own).")
@click.option("--ssh-port", type=click.IntRange(1, 65535), help="The SSH port (default 22).")
@click.option("--country", help="ISO 3166-1 alpha-2 code of the Pi's country (Wi-Fi rules).")
@click.option("--cameras-from", type=click.Choice(CAMERA_SOURCES), help="How to find the cameras.")
@click.option("--gethomedata", type=click.Path(dir_okay=False), help="A saved gethomedata answer.")
@click.option(
    "--netatmo-token", envvar="NETATMO_TOKEN", show_envvar=True, help="A Netatmo access token."
)
@click.option("--api-url", envvar="NETATMO_API_URL", hidden=True, help="Netatmo's API base URL.")
@click.option(
    "--vault-password-file",
    type=click.Path(dir_okay=False),
    help="Where to keep the vault password [default: .presence-appliance/vault-password "
    "next to the inventory, where every command looks for it].",
)
@click.option(
    "-y", "--yes", is_flag=True, help="Never ask: take answers and proposals as they are."
)
@click.option("--force", is_flag=True, help="Replace an existing inventory.")
@no_traceback
def init(
    inventory_path: str,
    answers: str | None,
    pi_address: str | None,
    ssh_user: str | None,
    ssh_key: str | None,
    ssh_port: int | None,
    country: str | None,
    cameras_from: str | None,
    gethomedata: str | None,
    netatmo_token: str | None,
    api_url: str | None,
    vault_password_file: str | None,
    yes: bool,
    force: bool,
) -> None:
    """Write a new inventory: asks the Pi's address, SSH user, country and where the
    cameras come from; checks the Pi over SSH; proposes the rest (Wi-Fi name and a
    strong passphrase, camera network, web login, NTP); puts every secret in Ansible Vault.

    Non-interactive with --answers FILE (or the flags) and --yes.
    """
    from appliance.init_answers import host_vars, propose
    from appliance.init_cameras import plan_cameras
    from appliance.init_preflight import run_preflight
    from appliance.init_write import (
        WriteError,
        default_vault_file,
        ensure_vault_password,
        inventory_text,
        remove_vault_password,
        write_inventory,
    )

    path = Path(inventory_path)
    if path.exists() and not force:
        fail(f"{path}: already exists; give --force to replace it", EXIT_USAGE)
    try:
        given = load_answers(answers) if answers else Answers()
        for key, value in (
            ("pi_address", pi_address),
            ("ssh_user", ssh_user),
            ("ssh_key", ssh_key),
            ("ssh_port", ssh_port),
            ("country", country),
            ("cameras_from", cameras_from),
            ("gethomedata", gethomedata),
            ("netatmo_token", netatmo_token),
        ):
            if value is not None:
                setattr(given, key, value)
        check_answers(given)
        _ask(given, yes)
        check_answers(given)
    except AnswersError as err:
        fail(str(err), EXIT_USAGE)

    # The host variables decide how ssh connects (user, key, port, extra options).
    connection = host_vars(given)
    click.echo(f"Checking {given.ssh_user}@{given.pi_address} over SSH:")
    checks, facts = run_preflight(connection, given.host_name, given.camera_interface)
    for check in checks:
        click.echo(_status(check))
    if any(c.status == "fail" for c in checks):
        fail("the Pi is not ready (see above); nothing was written", EXIT_INVALID)

    try:
        proposal = propose(given, facts.wifi_interfaces, facts.uplink, facts.networks)
        camera_plan = plan_cameras(given, proposal.group_vars, api_url)
    except AnswersError as err:
        fail(str(err), EXIT_INVALID)
    _summary(proposal, camera_plan.entries, camera_plan.notes)
    if not yes and not click.confirm(f"\nWrite {path}?", default=True):
        fail("nothing was written", EXIT_INVALID)

    vault_file = Path(vault_password_file) if vault_password_file else default_vault_file(path)
    created = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        created = ensure_vault_password(vault_file)
        text = inventory_text(proposal, camera_plan.entries, str(vault_file), str(vault_file))
        problems = _validate_text(path, text, str(vault_file))
        if problems:
            for problem in problems:
                click.echo(problem, err=True)
            raise WriteError(f"{path}: the proposed inventory is not valid; nothing was written")
        write_inventory(path, text, force)
    except (WriteError, OSError) as err:
        if created:
            # A password no inventory uses would only confuse the next run.
            remove_vault_password(vault_file)
        fail(str(err), EXIT_INVALID if isinstance(err, WriteError) else EXIT_USAGE)

    wifi = proposal.group_vars["wifi"]
    user = proposal.group_vars["web"]["users"][0]["name"]
    click.echo(f"\nWrote {path} (mode 0600; secrets in Ansible Vault).")
    made = "new vault password" if created else "vault password (kept)"
    click.echo(f"The {made} is in {vault_file} (mode 0600): keep a copy somewhere safe.")
    if vault_password_file:
        click.echo(
            f"Other commands need it: --vault-password-file {vault_file} "
            f"(or export ANSIBLE_VAULT_PASSWORD_FILE={vault_file})."
        )
    # Shown this once on purpose: the user types them into the Netatmo app and a browser.
    click.echo("\nShown once (they are in the vault):")
    click.echo(f"  Wi-Fi {wifi['ssid']!r} passphrase: {proposal.wifi_passphrase}")
    click.echo(f"  dashboard login: {user} / {proposal.web_password}")
    click.echo(
        f"\nNext: presence-appliance install{'' if path.name == 'inventory.yml' else f' -i {path}'}"
    )
