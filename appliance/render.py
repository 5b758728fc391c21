"""Render every config file the roles would put on an appliance, into a local folder.

One source of truth: it reads each role's own `tasks/files.yml` (the template tasks
the role runs on the Pi) and renders those very templates with Ansible's Templar,
with the same variables (role defaults < inventory < role vars) — never a second
copy of the templates. `validate:` is not run here; the render tests run the real
checkers (hostapd, dnsmasq --test, nginx -t, chronyd) on the output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ansible.template import Templar, generate_ansible_template_vars, trust_as_template

from appliance.content import roles_dir, site_playbook
from appliance.inventory import Inventory, InventoryError

TEMPLATE_MODULES = ("ansible.builtin.template", "template")


class RenderError(Exception):
    """A template or its task could not be rendered. One line, naming the role and file."""


@dataclass(frozen=True)
class RenderedFile:
    role: str
    path: str  # the target path on the Pi, e.g. /etc/hostapd/hostapd.conf
    mode: int


def site_roles(playbook: Path | None = None) -> list[str]:
    """The roles the site playbook applies, in order (the playbook is the one list)."""
    plays = yaml.safe_load((playbook or site_playbook()).read_text())
    roles: list[str] = []
    for play in plays or []:
        for role in play.get("roles", []) or []:
            name = role if isinstance(role, str) else role.get("role") or role.get("name")
            if name and name not in roles:
                roles.append(name)
    return roles


def _load_yaml(path: Path) -> Any:
    if not path.exists():
        return None
    return yaml.safe_load(path.read_text())


def render_appliance(
    inventory: Inventory, host: str, out_dir: Path, roles: list[str] | None = None
) -> list[RenderedFile]:
    """Render HOST's files under OUT_DIR at their target paths; return what was written."""
    inventory.appliance(host)  # a clear error for an unknown host
    role_names = roles if roles is not None else site_roles()
    base = roles_dir()
    all_defaults: dict[str, Any] = {}
    for role in role_names:
        all_defaults.update(_load_yaml(base / role / "defaults" / "main.yml") or {})
    host_vars = inventory.raw_vars(host)

    written: list[RenderedFile] = []
    for role in role_names:
        role_path = base / role
        tasks = _load_yaml(role_path / "tasks" / "files.yml") or []
        variables: dict[str, Any] = {
            **all_defaults,
            **host_vars,
            **(_load_yaml(role_path / "vars" / "main.yml") or {}),
            "role_name": role,
            "role_path": str(role_path),
            "ansible_check_mode": False,
            "ansible_facts": {},
        }
        variables = {k: _trusted(v) for k, v in variables.items()}
        templar = Templar(loader=inventory.loader, variables=variables)
        for task in tasks:
            written += _render_task(
                templar,
                role,
                role_path,
                task,
                variables,
                out_dir,
            )
    return written


def _trusted(value: Any) -> Any:
    # Role defaults and vars come from the role's own files: Ansible trusts them as templates.
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    return value


def _render_task(
    templar: Any,
    role: str,
    role_path: Path,
    task: dict[str, Any],
    variables: dict[str, Any],
    out_dir: Path,
) -> list[RenderedFile]:
    module = next((m for m in TEMPLATE_MODULES if m in task), None)
    name = task.get("name", "?")
    if module is None:
        raise RenderError(f"roles/{role}/tasks/files.yml: task {name!r} is not a template task")
    args = task[module]
    loop_var = (task.get("loop_control") or {}).get("loop_var", "item")
    items: list[Any] = [None]
    try:
        if "loop" in task:
            items = list(templar.template(_trusted(task["loop"])) or [])
        written = []
        for item in items:
            scope = dict(variables)
            if "loop" in task:
                scope[loop_var] = item
            item_templar = templar.copy_with_new_env(available_variables=scope)
            if not _when(item_templar, task.get("when")):
                continue
            src = str(item_templar.template(trust_as_template(str(args["src"]))))
            dest = str(item_templar.template(trust_as_template(str(args["dest"]))))
            mode = int(
                str(item_templar.template(trust_as_template(str(args.get("mode", "0644"))))), 8
            )
            source = role_path / "templates" / src
            text = trust_as_template(source.read_text(encoding="utf-8"))
            extra = dict(
                generate_ansible_template_vars(path=src, fullpath=str(source), dest_path=dest)
            )
            if "ansible_managed" in scope:  # as the template action: never clobber the user's
                extra.pop("ansible_managed", None)
            scope.update(extra)
            data_templar = templar.copy_with_new_env(
                searchpath=[str(role_path / "templates"), str(source.parent)],
                available_variables=scope,
            )
            result = data_templar.template(
                text,
                escape_backslashes=False,
                overrides={"trim_blocks": True, "lstrip_blocks": False},
            )
            _write(out_dir, dest, "" if result is None else str(result), mode)
            written.append(RenderedFile(role=role, path=dest, mode=mode))
        return written
    except RenderError:
        raise
    except Exception as err:
        first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise RenderError(f"roles/{role}/tasks/files.yml: {name}: {first.strip()}") from None


def _when(templar: Any, condition: Any) -> bool:
    if condition is None:
        return True
    conditions = condition if isinstance(condition, list) else [condition]
    for cond in conditions:
        if isinstance(cond, bool):
            if not cond:
                return False
            continue
        value = templar.template(trust_as_template("{{ (" + str(cond) + ") | bool }}"))
        if not value:
            return False
    return True


def _write(out_dir: Path, dest: str, text: str, mode: int) -> None:
    target = out_dir / dest.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    # Create with the final mode from the start: a secret never sits world-readable.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, target)


__all__ = ["InventoryError", "RenderError", "RenderedFile", "render_appliance", "site_roles"]
