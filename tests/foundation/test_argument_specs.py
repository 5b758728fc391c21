"""The roles' argument specs mirror the one schema (appliance/schema.py) for every inventory key they declare."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from appliance.render import site_roles
from appliance.schema import SCHEMA, to_argument_spec
from tests.conftest import REPO

ROLES = site_roles(REPO / "playbooks" / "site.yml")


def _compare(path: str, schema: dict[str, Any], spec: dict[str, Any], problems: list[str]) -> None:
    for key, declared in spec.items():
        if key not in schema:
            continue  # the role's own knobs, or keys the schema leaves open
        expected = schema[key]
        where = f"{path}{key}"
        if declared.get("type", "str") != expected["type"]:
            problems.append(f"{where}: type {declared.get('type')} != schema {expected['type']}")
        if expected.get("choices") and sorted(map(str, declared.get("choices", []))) != sorted(
            map(str, expected["choices"])
        ):
            problems.append(
                f"{where}: choices {declared.get('choices')} != schema {expected['choices']}"
            )
        if expected.get("elements") and declared.get("elements") != expected["elements"]:
            problems.append(
                f"{where}: elements {declared.get('elements')} != schema {expected['elements']}"
            )
        if declared.get("required") and not expected.get("required"):
            problems.append(f"{where}: required in the role but optional in the schema")
        if "options" in declared and "options" in expected:
            # Ansible refuses keys a dict's `options` do not list: a valid inventory would
            # fail the role's argument validation.
            for missing in sorted(set(expected["options"]) - set(declared["options"])):
                problems.append(f"{where}.{missing}: in the schema but not in the role's options")
            _compare(where + ".", expected["options"], declared["options"], problems)


@pytest.mark.parametrize("role", ROLES)
def test_role_argument_spec_mirrors_schema(role: str) -> None:
    spec_file = REPO / "roles" / role / "meta" / "argument_specs.yml"
    assert spec_file.exists(), f"roles/{role} has no meta/argument_specs.yml"
    options = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"]["options"]
    declared_inventory_keys = set(options) & set(SCHEMA)
    assert declared_inventory_keys, f"roles/{role} declares none of the inventory keys it uses"
    problems: list[str] = []
    _compare("", to_argument_spec(), options, problems)
    assert not problems, "\n".join(problems)


def test_every_schema_key_is_declared_by_some_role() -> None:
    declared: set[str] = set()
    for role in ROLES:
        spec_file = REPO / "roles" / role / "meta" / "argument_specs.yml"
        if spec_file.exists():
            declared |= set(
                yaml.safe_load(spec_file.read_text())["argument_specs"]["main"]["options"]
            )
    assert set(SCHEMA) <= declared, f"no role declares {sorted(set(SCHEMA) - declared)}"
