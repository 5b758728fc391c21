"""Property: whatever is done to a valid inventory, validate answers as designed: exit 0 (valid),
1 (every problem named) or 2 (unreadable, one `error:` line naming the file); never a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.cli import main
from tests.cli_checks import assert_no_crash
from tests.conftest import EXAMPLE, example_data
from tests.hostile_data import mutated
from tests.property_cases import examples, ran

pytestmark = pytest.mark.property


def mutated_inventories() -> st.SearchStrategy[Any]:
    return mutated(example_data())


def _validate(path: Path) -> Any:
    result = CliRunner().invoke(main, ["validate", "-i", str(path)])
    assert_no_crash(result)
    if result.exit_code == 2:
        # Unreadable: exactly one line, naming the file.
        assert result.output.splitlines() == [
            line for line in result.output.splitlines() if line.startswith(f"error: {path}")
        ], result.output
        assert len(result.output.splitlines()) == 1, result.output
    return result


@settings(max_examples=examples(250))
@given(data=mutated_inventories())
def test_validate_never_crashes(tmp_path: Path, data: Any) -> None:
    ran("validate")
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    result = _validate(path)
    if result.exit_code == 1:
        assert f"{path}: " in result.output and "problem(s)" in result.output


@settings(max_examples=examples(250))
@example(text='a: "\\ud83c\\udfe0"\n')  # a surrogate escape: libyaml refuses what PyYAML reads
@example(text="k: \x7f\n")  # a forbidden character: only a reader offset, no line
@example(text=EXAMPLE.read_text())  # a whole valid inventory: validate runs every rule
@example(text=EXAMPLE.read_text().replace("cameras:", "cameras: 5\n  x:", 1))
@example(text="[]")
@example(text="all: {hosts: 5}")
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_crashes(tmp_path: Path, text: str) -> None:
    ran("validate")
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    _validate(path)
