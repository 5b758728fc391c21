"""`install`'s choice of which Pis' cameras to check after a run where some Pis failed."""

from __future__ import annotations

from pathlib import Path

from appliance.cli.install_cmd import failed_hosts, provisioned_hosts
from appliance.inventory import Appliance, Inventory
from appliance.playbook_run import HostRecap, PlaybookResult, TaskResult


def _inventory(*names: str) -> Inventory:
    return Inventory(path=Path("inventory.yml"), appliances=[Appliance(n, {}) for n in names])


def test_a_failed_or_unreachable_pi_is_left_out_and_the_others_are_checked() -> None:
    result = PlaybookResult(
        status="failed",
        rc=2,
        recap={
            "localhost": HostRecap(ok=1),
            "pi-a": HostRecap(ok=40),
            "pi-b": HostRecap(ok=12, failures=1),
            "pi-c": HostRecap(unreachable=1),
        },
        failures=[
            TaskResult("pi-b", "ntp : Write chrony.conf", "failed", "rejected"),
            TaskResult("pi-c", "Gathering Facts", "unreachable", "no route"),
        ],
    )
    inventory = _inventory("pi-c", "pi-b", "pi-a", "pi-d")
    assert failed_hosts(result) == ["pi-b", "pi-c"]
    # pi-d was outside --limit: not in the recap, not checked.
    assert provisioned_hosts(result, inventory) == ["pi-a"]


def test_a_failure_in_the_controller_side_guard_names_the_pi() -> None:
    # The schema guard runs delegated to localhost but reports the appliance's name.
    result = PlaybookResult(
        status="failed",
        rc=2,
        recap={"pi-a": HostRecap(ok=3), "pi-b": HostRecap(ok=3)},
        failures=[TaskResult("pi-b", "Validate the appliance's variables", "failed", "bad")],
    )
    assert failed_hosts(result) == ["pi-b"]
    assert provisioned_hosts(result, _inventory("pi-a", "pi-b")) == ["pi-a"]
