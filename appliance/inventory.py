"""Load an inventory through Ansible's own inventory and variable machinery.

Group vars, host vars, `!vault` values and `{{ templated }}` values all resolve
exactly as they would for `ansible-playbook`, so what we validate and render is
what the roles will see.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

APPLIANCE_GROUP = "appliances"
DEFAULT_INVENTORY = "inventory.yml"


class InventoryError(Exception):
    """The inventory cannot be read at all (missing file, YAML syntax, vault). One line."""


@dataclass
class Appliance:
    """One Pi: its inventory name and its merged, templated, decrypted variables."""

    name: str
    vars: dict[str, Any]
    # Variables whose value could not be resolved (undefined template, no vault
    # password): name -> one-line reason. The schema reports them at their path.
    unresolved: dict[str, str] = field(default_factory=dict)


@dataclass
class Inventory:
    path: Path
    appliances: list[Appliance]
    # Ansible's own objects, kept for rendering with the raw (still vaulted) variables.
    loader: Any = field(default=None, repr=False)
    variable_manager: Any = field(default=None, repr=False)
    hosts: dict[str, Any] = field(default_factory=dict, repr=False)

    def appliance(self, name: str) -> Appliance:
        for appliance in self.appliances:
            if appliance.name == name:
                return appliance
        known = ", ".join(a.name for a in self.appliances) or "none"
        raise InventoryError(f"{self.path}: no appliance {name!r} (appliances: {known})")

    def raw_vars(self, name: str) -> dict[str, Any]:
        """The host's variables as Ansible holds them (vault values still encrypted)."""
        return self.variable_manager.get_vars(host=self.hosts[name], include_hostvars=False)


def default_inventory_path() -> str:
    return os.environ.get("PRESENCE_INVENTORY", DEFAULT_INVENTORY)


def default_vault_password_file() -> str | None:
    return os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE") or None


# Where `init` puts the vault password: the controller state folder next to the inventory
# (the default appliance_controller_dir). Commands use it when no other file is given.
CONTROLLER_VAULT_PASSWORD = Path(".presence-appliance") / "vault-password"


def controller_vault_password_file(inventory_path: str | os.PathLike[str]) -> Path:
    path = Path(inventory_path)
    return (path if path.is_dir() else path.parent) / CONTROLLER_VAULT_PASSWORD


def vault_password_file_for(
    inventory_path: str | os.PathLike[str], given: str | None
) -> str | None:
    """GIVEN (flag or $ANSIBLE_VAULT_PASSWORD_FILE), else init's file next to the inventory."""
    if given:
        return given
    default = controller_vault_password_file(inventory_path)
    return str(default) if default.is_file() else None


def load_inventory(
    path: str | os.PathLike[str], vault_password_file: str | None = None
) -> Inventory:
    """Read PATH as Ansible would and return the appliances with their variables."""
    inventory_path = Path(path)
    if not inventory_path.exists():
        raise InventoryError(f"{inventory_path}: no such inventory file")
    if inventory_path.is_file():
        _check_yaml_syntax(inventory_path)
    for vars_file in _adjacent_vars_files(inventory_path):
        _check_yaml_syntax(vars_file)

    # Imported here: Ansible costs ~0.4 s to import and `--help` must stay fast.
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    _set_vault_secrets(loader, vault_password_file)
    try:
        manager = InventoryManager(loader=loader, sources=[str(inventory_path)])
        if not manager.list_hosts("all") and not _has_group(manager, APPLIANCE_GROUP):
            raise InventoryError(
                f"{inventory_path}: not an Ansible inventory (no hosts, no groups)"
            )
        variable_manager = VariableManager(loader=loader, inventory=manager)
        group = manager.groups.get(APPLIANCE_GROUP)
        hosts = sorted(group.get_hosts(), key=lambda h: h.name) if group else []
        appliances = [_appliance(loader, variable_manager, host) for host in hosts]
    except AnsibleError as err:
        raise InventoryError(f"{inventory_path}: {_one_line(str(err))}") from None
    return Inventory(
        path=inventory_path,
        appliances=appliances,
        loader=loader,
        variable_manager=variable_manager,
        hosts={h.name: h for h in hosts},
    )


def _has_group(manager: Any, name: str) -> bool:
    return name in manager.groups


def _appliance(loader: Any, variable_manager: Any, host: Any) -> Appliance:
    from ansible.template import Templar

    raw = variable_manager.get_vars(host=host, include_hostvars=False)
    templar = Templar(loader=loader, variables=raw)
    resolved: dict[str, Any] = {}
    unresolved: dict[str, str] = {}
    for key in raw:
        if key.startswith("ansible_facts") or key in _MAGIC_VARS:
            continue
        try:
            resolved[key] = plain(templar.template(raw[key]))
        except Exception as err:  # any template/vault failure is reported per key
            unresolved[key] = _one_line(str(err))
    return Appliance(name=host.name, vars=resolved, unresolved=unresolved)


# Variables Ansible adds by itself; they are not the user's and some are large.
_MAGIC_VARS = {
    "hostvars",
    "groups",
    "group_names",
    "omit",
    "playbook_dir",
    "ansible_playbook_python",
    "ansible_config_file",
    "ansible_version",
    "ansible_check_mode",
    "ansible_diff_mode",
    "ansible_forks",
    "ansible_run_tags",
    "ansible_skip_tags",
    "ansible_verbosity",
    "ansible_inventory_sources",
    "environment",
    "vars",
}


def plain(value: Any) -> Any:
    """Ansible 2.19 returns tagged str/dict/list subclasses; give back plain Python types."""
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return str(value)


def _set_vault_secrets(loader: Any, vault_password_file: str | None) -> None:
    from ansible.parsing.vault import VaultSecretsContext, get_file_vault_secret

    secrets = []
    if vault_password_file:
        if not Path(vault_password_file).exists():
            raise InventoryError(f"{vault_password_file}: no such vault password file")
        try:
            secret = get_file_vault_secret(filename=vault_password_file, loader=loader)
            secret.load()
        except Exception as err:
            raise InventoryError(f"{vault_password_file}: {_one_line(str(err))}") from None
        secrets.append(("default", secret))
    loader.set_vault_secrets(secrets)
    # Ansible initialises this context once per process (its CLI does); we may load
    # several inventories in one process (tests, `camera add` re-validation), so set it.
    VaultSecretsContext._current = VaultSecretsContext(secrets)


def _adjacent_vars_files(inventory_path: Path) -> list[Path]:
    base = inventory_path if inventory_path.is_dir() else inventory_path.parent
    files: list[Path] = []
    for sub in ("group_vars", "host_vars"):
        folder = base / sub
        if folder.is_dir():
            files += [
                p
                for p in sorted(folder.rglob("*"))
                if p.is_file() and p.suffix in {".yml", ".yaml", ""} and not p.name.startswith(".")
            ]
    return files


class _VaultTolerantLoader(yaml.SafeLoader):
    """A YAML loader that accepts Ansible's `!vault` and `!unsafe` tags, for syntax checks only."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_VaultTolerantLoader.add_multi_constructor("!", _any_tag)


def _check_yaml_syntax(path: Path) -> None:
    """Report YAML syntax errors ourselves: Ansible only warns and carries on with nothing."""
    if path.suffix not in {".yml", ".yaml", ""}:
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InventoryError(f"{path}: cannot read: {_one_line(str(err))}") from None
    if text.startswith("$ANSIBLE_VAULT"):
        return  # a whole-file vault; Ansible decrypts it
    try:
        yaml.load(text, Loader=_VaultTolerantLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise InventoryError(f"{path}: {where}: YAML syntax error: {err.problem}") from None
    except yaml.YAMLError as err:
        raise InventoryError(f"{path}: YAML syntax error: {_one_line(str(err))}") from None


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"
