"""Action plugin: run presence-appliance's inventory schema inside the playbook's guard play.

It lets `ansible-playbook` run by hand reject a bad inventory with the same messages
as `presence-appliance validate`, before any task touches a Pi.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ansible.plugins.action import ActionBase


def _import_schema():
    try:
        from appliance import schema
        from appliance.inventory import plain
    except ImportError:
        # Run from a checkout without the package installed: the package sits
        # two folders above playbooks/action_plugins/.
        here = Path(__file__).resolve()
        for parent in here.parents:
            if (parent / "appliance" / "schema.py").exists():
                sys.path.insert(0, str(parent))
                break
        from appliance import schema
        from appliance.inventory import plain
    return schema, plain


class ActionModule(ActionBase):
    _requires_connection = False
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        schema, plain = _import_schema()
        task_vars = task_vars or {}
        host = task_vars.get("inventory_hostname", "?")
        hostvars = task_vars.get("hostvars", {})

        def resolved(variables):
            values, unresolved = {}, {}
            for key in schema.SCHEMA:
                if key not in variables:
                    continue
                try:
                    values[key] = plain(self._templar.template(variables[key]))
                except Exception as err:  # undefined template or missing vault password
                    unresolved[key] = str(err).splitlines()[0] if str(err) else type(err).__name__
            return values, unresolved

        values, unresolved = resolved(task_vars)
        problems = schema.validate_appliance(host, values, unresolved)
        others = []
        for other in task_vars.get("groups", {}).get("appliances", []):
            if other == host:
                others.append((host, values))
            elif other in hostvars:
                others.append((other, resolved(hostvars[other])[0]))
        problems += [p for p in schema.validate_across(others) if p.host == host]
        bad = schema.errors(problems)
        result["changed"] = False
        result["warnings"] = [str(p) for p in problems if p.severity == "warning"]
        if bad:
            result["failed"] = True
            result["msg"] = "; ".join(str(p) for p in bad)
        else:
            result["msg"] = "inventory valid"
        return result
