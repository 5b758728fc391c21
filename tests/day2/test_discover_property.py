"""Property, at volume: whatever a cloud answer holds, discover either refuses it in one line
naming the place (exit 2), or every value it goes on to use has the form it must have, and
`--write` leaves a valid inventory without a template in it; never a crash."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.cli import main
from appliance.discover import (
    BIDI_CONTROLS,
    MAC,
    MAX_TEXT,
    SECURE_ID,
    AnswerError,
    from_saved,
    plan_merge,
)
from appliance.inventory import load_inventory
from appliance.inventory_edit import EditError
from appliance.schema import CAMERA_NAME, errors, string_problem, validate
from tests.cli_checks import assert_no_crash
from tests.conftest import appliance_vars, example_data
from tests.hostile_data import mutated
from tests.property_cases import examples, ran

pytestmark = pytest.mark.property

FIXTURES = Path(__file__).parent / "fixtures"
GETHOMEDATA = json.loads((FIXTURES / "gethomedata.json").read_text())
HOMES = json.loads((FIXTURES / "homes.json").read_text())
SECURE_IDS = ("9f86d081884c7d659a2feaa0c55ad015", "7c4a8d09ca3762af61e59520943dc264")
answers = st.one_of(mutated(GETHOMEDATA), mutated(HOMES))


def _check_message(message: str) -> None:
    assert message.startswith("answer.json: "), message
    assert message.isprintable(), message  # one line, no control character
    assert len(message) < 400
    for secure_id in SECURE_IDS:
        assert secure_id not in message


@settings(max_examples=examples(2200))
@given(answer=answers)
@example(answer={"body": {"homes": [{"cameras": 5}]}})
@example(answer={"body": {"homes": [{"cameras": [{"id": "{{ lookup('pipe', 'id') }}"}]}]}})
@example(answer={"homesdata": {"body": {"homes": [{"modules": [{"type": ["NOC"]}]}]}}})
@example(answer={"body": {"homes": [{"name": "\ud7a4", "cameras": []}]}})  # unassigned: allowed
@example(answer={"body": {"homes": [{"name": "\u202eevil", "cameras": []}]}})
def test_answers_are_refused_or_every_used_value_is_checked(answer: Any) -> None:
    ran("discover (cloud answer)")
    try:
        cameras = from_saved(answer, "answer.json")
    except AnswerError as err:
        _check_message(str(err))
        return
    assert len({c.mac for c in cameras}) == len(cameras)
    for camera in cameras:
        assert MAC.match(camera.mac) and camera.mac == camera.mac.lower()
        assert camera.secure_id is None or SECURE_ID.match(camera.secure_id)
        for text in (camera.name, camera.home, camera.type, *camera.notes):
            # Printed as they are: no control character, no bidirectional override.
            assert isinstance(text, str) and len(text) <= MAX_TEXT
            assert string_problem(text) is None and not BIDI_CONTROLS & set(text)
    try:
        plan = plan_merge(cameras, appliance_vars(example_data()))
    except EditError as err:  # e.g. no free address left: a refusal, one line
        assert str(err).isprintable()
        return
    for _, entry in plan.added:
        assert CAMERA_NAME.match(entry["name"])
        assert MAC.match(entry["mac"]) and SECURE_ID.match(entry["secure_id"])
        assert not any("{" in str(v) for v in entry.values())


@pytest.fixture(scope="module")
def inventory_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("discover")
    shutil.copy(FIXTURES / "inventory.yml", folder / "inventory.yml")
    shutil.copy(FIXTURES / "vault-password", folder / "vault-password")
    return folder


@settings(max_examples=examples(150))
@given(answer=answers)
def test_discover_write_never_crashes_and_keeps_the_inventory_valid(
    answer: Any, inventory_dir: Path
) -> None:
    ran("discover --write (command)")
    work = Path(tempfile.mkdtemp(dir=inventory_dir))
    inventory = work / "inventory.yml"
    shutil.copy(inventory_dir / "inventory.yml", inventory)
    before = inventory.read_bytes()
    answer_file = work / "answer.json"
    answer_file.write_text(json.dumps(answer))
    vault = str(inventory_dir / "vault-password")
    result = CliRunner().invoke(
        main,
        [
            *("discover", "--from", str(answer_file), "--write", "-i", str(inventory)),
            *("--vault-password-file", vault),
        ],
    )
    assert_no_crash(result)
    assert all(string_problem(line) is None for line in result.output.splitlines()), result.output
    if result.exit_code != 0:
        assert inventory.read_bytes() == before
        return
    text = inventory.read_text()
    assert text.startswith(before.decode())  # only appended: nothing the user wrote was touched
    assert "{{" not in text[len(before) :] and "{%" not in text[len(before) :]
    assert not errors(validate(load_inventory(inventory, vault)))
    shutil.rmtree(work)
