"""Property, at volume: the schema answers every inventory, however mangled, with problems that
are one printable line each, name a place, and never echo a secret; it never raises."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings

from appliance.schema import validate_across, validate_appliance
from tests.conftest import appliance_vars, example_data
from tests.hostile_data import mutated
from tests.property_cases import examples, ran

pytestmark = pytest.mark.property

BASE = appliance_vars(example_data())
# Values that must never appear in a message (they may be real secrets).
SECRET_KEYS = {"passphrase", "secure_id", "password", "password_hash", "ftp_password"}


def _strings(node: Any, key: str = "") -> list[tuple[bool, str]]:
    """(is it a secret, the string) for every string and key in NODE."""
    if isinstance(node, dict):
        return [(False, str(k)) for k in node] + [
            s for k, v in node.items() for s in _strings(v, str(k))
        ]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v, key)]
    return [(key in SECRET_KEYS, node)] if isinstance(node, str) else []


def _secrets(node: Any) -> list[str]:
    """Secrets long enough to be recognised, and not also part of a value that is no secret."""
    strings = _strings(node)
    public = "\n".join(text for secret, text in strings if not secret)
    return [t for secret, t in strings if secret and len(t) >= 8 and t not in public]


@settings(max_examples=examples(2800))
@given(variables=mutated(BASE, max_changes=5))
@example(variables={**BASE, "wifi": {**BASE["wifi"], "passphrase": "secret-pass\n"}})
@example(variables={**BASE, "cameras": [{**BASE["cameras"][0], "secure_id": "ab" * 40 + "\n"}]})
@example(variables={**BASE, "wifi": {**BASE["wifi"], "channel": "6\n"}})
@example(variables={**BASE, "wifi": {**BASE["wifi"], "channel": "\u0666"}})  # an Arabic six
def test_problems_are_one_line_name_a_place_and_hide_secrets(variables: dict[str, Any]) -> None:
    ran("schema")
    problems = validate_appliance("pi", variables)
    problems += validate_across([("pi", variables), ("other", BASE)])
    secrets = _secrets(variables)
    for problem in problems:
        line = str(problem)
        assert problem.severity in ("error", "warning")
        assert line.isprintable(), line  # one line: no newline, no control character
        assert line.startswith("pi: ") or line.startswith("other: ")
        assert problem.path, line  # a place, always
        for secret in secrets:
            assert secret not in line, f"a secret in: {line}"
