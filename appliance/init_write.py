"""`init`'s output: a commented inventory.yml with every secret in Ansible Vault, and the
vault password file the other commands then find by themselves.

The vault password lives at `<inventory dir>/.presence-appliance/vault-password` (mode
0600, in a 0700 folder with a .gitignore), outside the inventory file;
appliance.inventory.controller_vault_password_file is how every command finds it.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from appliance.init_answers import Proposal
from appliance.inventory import controller_vault_password_file
from appliance.inventory_edit import render_scalar, vault_block, vault_encrypt

SECRET_KEYS = {"passphrase", "password", "secure_id", "ftp_password"}


class WriteError(Exception):
    """Nothing (or nothing new) was written; one line."""


def ensure_vault_password(path: Path) -> bool:
    """Create PATH with a new random password (0600, folder 0700) unless it exists.

    Returns True when it was created. An existing one is kept: other vaulted values
    (an older inventory, group_vars) may depend on it.
    """
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise WriteError(f"{path}: readable by others; `chmod 600 {path}` first")
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():
        # The vault password must never land in a repository next to the inventory.
        ignore.write_text("# presence-appliance controller state: never commit it\n*\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    return True


def remove_vault_password(path: Path) -> None:
    """Undo ensure_vault_password: the file, and its folder when nothing else is in it."""
    path.unlink(missing_ok=True)
    ignore = path.parent / ".gitignore"
    if ignore.is_file() and [p.name for p in path.parent.iterdir()] == [".gitignore"]:
        ignore.unlink()
        path.parent.rmdir()


class _Emitter:
    """Writes YAML block text with vault values for secret keys (by key name)."""

    def __init__(self, vault_password_file: str) -> None:
        self.vault_password_file = vault_password_file
        self.lines: list[str] = []

    def comment(self, indent: int, text: str) -> None:
        for line in text.splitlines():
            self.lines.append(" " * indent + ("# " + line if line else "#"))

    def value(self, indent: int, key: str, value: Any, prefix: str = "") -> None:
        pad = " " * indent
        head = f"{pad}{prefix}{key}:"
        inner = indent + len(prefix) + 2
        if key in SECRET_KEYS and isinstance(value, str):
            cipher = vault_encrypt(value, self.vault_password_file)
            self.lines.append(f"{head} " + vault_block(cipher, inner).rstrip("\n"))
        elif isinstance(value, dict):
            if not value:
                self.lines.append(f"{head} {{}}")
                return
            self.lines.append(head)
            self.mapping(inner, value)
        elif isinstance(value, list):
            if not value:
                self.lines.append(f"{head} []")
                return
            self.lines.append(head)
            for item in value:
                self.item(inner, item)
        else:
            self.lines.append(f"{head} {self.scalar(key, value)}")

    def mapping(self, indent: int, mapping: dict[str, Any]) -> None:
        for key, value in mapping.items():
            self.value(indent, str(key), value)

    def item(self, indent: int, item: Any) -> None:
        if isinstance(item, dict) and item:
            keys = list(item)
            self.value(indent, str(keys[0]), item[keys[0]], prefix="- ")
            for key in keys[1:]:
                self.value(indent + 2, str(key), item[key])
        else:
            self.lines.append(f"{' ' * indent}- {self.scalar('', item)}")

    @staticmethod
    def scalar(key: str, value: Any) -> str:
        if isinstance(value, str):
            return render_scalar(key, value)
        # Numbers, booleans and null exactly as YAML spells them.
        return yaml.safe_dump(value, default_flow_style=True).splitlines()[0].removesuffix(" ...")


def inventory_text(
    proposal: Proposal, cameras: list[dict[str, Any]], vault_password_file: str, where: str
) -> str:
    """The new inventory, commented, secrets vaulted."""
    out = _Emitter(vault_password_file)
    group = dict(proposal.group_vars)
    group["cameras"] = cameras
    extra = {k: v for k, v in group.items() if k not in _GROUP_COMMENTS}
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    out.lines.append("---")
    out.comment(
        0,
        f"Written by `presence-appliance init` on {stamp}. An ordinary Ansible inventory:\n"
        "edit it by hand or with `presence-appliance camera add|remove|set`, then\n"
        "`presence-appliance validate` and `presence-appliance install`.\n"
        f"Secrets are Ansible Vault values; the vault password is in {where}\n"
        "(every command finds it there; keep a copy somewhere safe, never commit it).",
    )
    out.lines.append("all:")
    out.lines.append("  children:")
    out.lines.append("    appliances:")
    out.comment(6, "Each Pi is a host; how Ansible reaches it over SSH.")
    out.lines.append("      hosts:")
    out.lines.append(f"        {render_scalar('name', proposal.host_name)}:")
    out.mapping(10, proposal.host_vars)
    out.lines.append("      vars:")
    for key, comment in _GROUP_COMMENTS.items():
        if key not in group:
            continue
        if out.lines[-1] != "      vars:":
            out.lines.append("")
        out.comment(8, comment)
        out.value(8, key, group[key])
    if extra:
        out.lines.append("")
        out.comment(8, "Other variables (from the answers file).")
        out.mapping(8, extra)
    return "\n".join(out.lines) + "\n"


_GROUP_COMMENTS = {
    "wifi": "The cameras' Wi-Fi, served by the Pi. Give the cameras this SSID and passphrase\n"
    "in the Netatmo app (see the README: moving the cameras onto the Pi's Wi-Fi).",
    "camera_network": "The cameras' own network: the Pi's address on it, and the range for\n"
    "unknown clients (cameras get fixed addresses below it).",
    "uplink_interface": "The Pi's side toward your home network.",
    "ntp_upstream": "Where the Pi gets its time (it serves the cameras from it).",
    "web": "The dashboard and camera proxy: https://<the Pi>/ with this login. A self-signed\n"
    "certificate is made on the Pi (tls_cert/tls_key: null) and pinned by install.",
    "cameras": "The cameras: `presence-appliance camera add --from-lease MAC` adds one that\n"
    "joined the Wi-Fi; `discover --write` adds them from Netatmo's API.",
}


def write_inventory(path: Path, text: str, force: bool) -> None:
    """Write TEXT to PATH atomically (mode 0600); never over an existing file without FORCE."""
    if path.exists() and not force:
        raise WriteError(f"{path}: already exists; give --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        if not force and path.exists():
            raise WriteError(f"{path}: appeared while writing; give --force to replace it")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def default_vault_file(inventory_path: Path) -> Path:
    return controller_vault_password_file(inventory_path)
