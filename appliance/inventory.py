"""Load an inventory through Ansible's own inventory and variable machinery.

Group vars, host vars, `!vault` values and `{{ templated }}` values all resolve
exactly as they would for `ansible-playbook`, so what we validate and render is
what the roles will see.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    # Ansible's own warnings while loading (one line each), printed by `validate`.
    warnings: list[str] = field(default_factory=list)

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
    """Read PATH as Ansible would and return the appliances with their variables.

    Ansible's own warnings (a plugin that could not parse the file, ...) are captured, never
    printed: a parse failure becomes one InventoryError naming the file, line and column.
    """
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
    with _captured_warnings() as captured:
        try:
            manager = InventoryManager(loader=loader, sources=[str(inventory_path)])
            if captured.parse_failures and not manager._inventory.processed_sources:
                raise InventoryError(_parse_failure(inventory_path, captured.parse_failures))
            if not manager.list_hosts("all") and not _has_group(manager, APPLIANCE_GROUP):
                raise InventoryError(
                    f"{inventory_path}: not an Ansible inventory (no hosts, no groups)"
                )
            variable_manager = VariableManager(loader=loader, inventory=manager)
            group = manager.groups.get(APPLIANCE_GROUP)
            hosts = sorted(group.get_hosts(), key=lambda h: h.name) if group else []
            appliances = [_appliance(loader, variable_manager, host) for host in hosts]
        except AnsibleError as err:
            raise InventoryError(f"{_where(err, inventory_path)}: {_message(err)}") from None
    return Inventory(
        path=inventory_path,
        appliances=appliances,
        loader=loader,
        variable_manager=variable_manager,
        hosts={h.name: h for h in hosts},
        warnings=[f"{inventory_path}: {_one_line(w)}" for w in captured.warnings],
    )


@dataclass
class _Captured:
    parse_failures: list[tuple[str, BaseException]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@contextmanager
def _captured_warnings() -> Iterator[_Captured]:
    """Keep Ansible's warnings (it prints them to stderr, many lines each) for us to report."""
    from ansible.utils.display import Display

    display = Display()  # a singleton: the one every Ansible module prints through
    captured = _Captured()

    def warning(msg: str, *args: Any, **kwargs: Any) -> None:
        captured.warnings.append(str(msg))

    def error_as_warning(msg: str | None, exception: BaseException, *args: Any, **kw: Any) -> None:
        if msg and "parse inventory" in msg:
            captured.parse_failures.append((msg, exception))
        else:
            captured.warnings.append(f"{msg or ''} {exception}".strip())

    def deprecated(msg: str, *args: Any, **kwargs: Any) -> None:
        captured.warnings.append(f"deprecated: {msg}")

    replaced = {"warning": warning, "error_as_warning": error_as_warning, "deprecated": deprecated}
    for name, function in replaced.items():
        setattr(display, name, function)
    try:
        yield captured
    finally:
        for name in replaced:
            delattr(display, name)  # the class's own methods show through again


def _parse_failure(path: Path, failures: list[tuple[str, BaseException]]) -> str:
    """One line for "no inventory plugin could read PATH": the YAML plugin's reason unless
    the file is named .ini (the ini plugin's complaint about YAML text would only mislead)."""

    # 'auto' only says the file is no plugin configuration: the 'yaml' plugin says why.
    order = (
        ["'ini'", "'yaml'", "'auto'"] if path.suffix in {".ini", ".cfg"} else ["'yaml'", "'ini'"]
    )

    def rank(failure: tuple[str, BaseException]) -> int:
        return next((i for i, name in enumerate(order) if name in failure[0]), len(order))

    _, err = sorted(failures, key=rank)[0]
    return f"{_where(err, path)}: not an inventory Ansible can read: {_message(err)}"


def _where(err: BaseException, path: Path) -> str:
    """`FILE: line L, column C` from the Origin Ansible attaches to its errors, when it has one."""
    seen: BaseException | None = err
    while seen is not None:
        origin = getattr(seen, "obj", None)
        line = getattr(origin, "line_num", None)
        if line:
            where = getattr(origin, "path", None) or str(path)
            if Path(where).resolve() == path.resolve():
                where = str(path)  # as the user named it, not Ansible's absolute form
            column = getattr(origin, "col_num", None)
            return f"{where}: line {line}" + (f", column {column}" if column else "")
        seen = seen.__cause__
    return str(path)


def _message(err: BaseException) -> str:
    text = getattr(err, "message", None) or str(err) or type(err).__name__
    return _one_line(str(text))


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


def _check_yaml_syntax(path: Path) -> None:
    """Report YAML syntax errors ourselves, with Ansible's own YAML reader (libyaml): Ansible
    only warns and carries on with nothing, and another reader would disagree at the edges
    (PyYAML reads a surrogate escape that libyaml refuses)."""
    if path.suffix not in {".yml", ".yaml", ""}:
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InventoryError(f"{path}: cannot read: {_one_line(str(err))}") from None
    if text.startswith("$ANSIBLE_VAULT"):
        return  # a whole-file vault; Ansible decrypts it
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader

    try:
        DataLoader().load(text, file_name=str(path.resolve()), show_content=False)
    except AnsibleError as err:
        problem = _message(err).removeprefix("YAML parsing failed: ").split(' in "<unicode')[0]
        where = _where(err, path)
        position = getattr(err.__cause__, "position", None)
        if where == str(path) and isinstance(position, int):
            # The reader's errors (a forbidden character) carry only an offset.
            line = text.count("\n", 0, position) + 1
            column = position - (text.rfind("\n", 0, position) + 1) + 1
            where = f"{path}: line {line}, column {column}"
        raise InventoryError(f"{where}: YAML syntax error: {problem}") from None


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"
