"""Shared test helpers: the repository root, the example inventory as data, and writing inventories."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import property_cases

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "inventory.example.yml"


def example_data() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))


def appliance_vars(data: dict[str, Any]) -> dict[str, Any]:
    return data["all"]["children"]["appliances"]["vars"]


def write_inventory(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def example() -> dict[str, Any]:
    return example_data()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how many generated (property-based) cases ran, per boundary."""
    line = property_cases.summary()
    if line:
        terminalreporter.write_line(line)
