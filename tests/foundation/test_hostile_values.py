"""Property (issue 11 §5): every string of an inventory gets `\\n`, `\\r`, `\\0`, `\\t`, U+2028,
over-long and random values; then either `validate` refuses it, or every checker of the
services that read it (hostapd's parse, `dnsmasq --test`, `chronyd -p`, `nginx -t`) accepts
the rendered file. Nothing in between: a value validate lets through never breaks the Pi."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.inventory import load_inventory
from appliance.inventory_edit import double_quoted
from appliance.render import render_appliance
from appliance.schema import SCHEMA, errors, validate
from tests.conftest import REPO, appliance_vars, example_data
from tests.foundation.checkers import check_rendered, prepare_web_root
from tests.property_cases import examples, ran

pytestmark = pytest.mark.property

HOST = "garden-pi"
# Which checker reads which role's files.
CHECKER_OF_ROLE = {
    "access_point": "hostapd",
    "dhcp": "dnsmasq --test",
    "ntp": "chronyd -p",
    "web": "nginx -t",
    "firewall": "nft -c",
}


def _roles_using(key: str) -> list[str]:
    """The roles whose argument specs take inventory key KEY: only their files can change."""
    roles = []
    for role in CHECKER_OF_ROLE:
        spec = yaml.safe_load((REPO / "roles" / role / "meta/argument_specs.yml").read_text())
        if key in spec["argument_specs"]["main"]["options"]:
            roles.append(role)
    return roles


ROLES_USING = {key: _roles_using(key) for key in SCHEMA}


def _base(vlan: bool) -> dict[str, Any]:
    data = example_data()
    variables = appliance_vars(data)
    # The optional string lists too (loopback: nginx -t binds it in its private namespace).
    variables["web"]["listen"] = ["127.0.0.2"]
    variables["firewall"] = {"admin_sources": ["192.168.1.0/24"]}
    if vlan:
        variables["wifi"]["isolation"] = "vlan_per_camera"
        for i, camera in enumerate(variables["cameras"]):
            camera["passphrase"] = f"camera-{i}-passphrase"
    return data


def _string_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, str):
        return [prefix]
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return []
    return [p for key, value in items for p in _string_paths(value, (*prefix, key))]


def _paths(vlan: bool) -> list[tuple[Any, ...]]:
    variables = appliance_vars(_base(vlan))
    return [p for key in SCHEMA if key in variables for p in _string_paths(variables[key], (key,))]


# Fields that take (nearly) any text: the SSID, passphrases, web passwords.
FREE_TEXT = ("ssid", "passphrase", "password")
# The characters issue 11 names, and their cousins.
CONTROLS = ["\n", "\r", "\x00", "\t", "\u2028", "\u2029", "\x85", "\x7f", "\x1b", "\x0b"]


@st.composite
def hostile_cases(draw: st.DrawFn) -> tuple[bool, tuple[Any, ...], str]:
    vlan = draw(st.booleans())
    kind = draw(st.sampled_from(["control", "control", "long", "text", "ascii"]))
    paths = _paths(vlan)
    if kind in ("text", "ascii") and draw(st.booleans()):
        # Random text mostly fails the strict fields; free text is where it reaches the Pi.
        paths = [p for p in paths if p[-1] in FREE_TEXT]
    path = draw(st.sampled_from(paths))
    node: Any = appliance_vars(_base(vlan))
    for key in path:
        node = node[key]
    original: str = node
    if kind == "control":
        at = draw(st.sampled_from([0, len(original) // 2, len(original)]))
        value = original[:at] + draw(st.sampled_from(CONTROLS)) + original[at:]
    elif kind == "long":
        size = draw(st.sampled_from([33, 64, 65, 254, 1024, 1025, 5000]))
        value = ((original or "a") * size)[:size]
    elif kind == "text":
        value = draw(st.text(st.characters(exclude_categories=("Cs",)), max_size=40))
    else:
        value = draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=70))
    return vlan, path, value


def _yaml(node: Any) -> str:
    """NODE as flow YAML, strings written by the inventory editor's own emitter: PyYAML's
    would write NEL or U+2028 raw, which Ansible's reader takes for a line break."""
    if isinstance(node, dict):
        return "{" + ", ".join(f"{_yaml(k)}: {_yaml(v)}" for k, v in node.items()) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(_yaml(v) for v in node) + "]"
    if isinstance(node, str):
        return double_quoted(node)
    return json.dumps(node)


@pytest.fixture(scope="module")
def web_knobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return prepare_web_root(tmp_path_factory.mktemp("web"))


@settings(max_examples=examples(300))
@given(case=hostile_cases())
# The values issue 11 found breaking the Pi after `validate` said "valid".
@example(case=(False, ("wifi", "ssid"), "cams\nhome"))
@example(case=(False, ("wifi", "passphrase"), "a-long-passphrase\n"))
@example(case=(False, ("web", "users", 0, "name"), "admin\n"))
@example(case=(False, ("cameras", 0, "name"), "nord\n"))
@example(case=(True, ("cameras", 1, "passphrase"), "camera-1-passphrase\n"))
@example(case=(False, ("ntp_upstream", 0), "fe80::1%eth0 iburst"))
@example(case=(False, ("wifi", "ssid"), "# not a comment = x "))
@example(case=(False, ("wifi", "ssid"), "\u00e9" * 16))
@example(case=(False, ("web", "listen", 0), "fe80::1%lo x"))
# Found by `make fuzz`: bcrypt (libxcrypt) refuses more than 72 bytes; render failed.
@example(case=(False, ("web", "users", 0, "password"), "change-me-too" * 78))
@example(case=(False, ("web", "users", 0, "password"), "\u00e9" * 36 + "x"))  # 73 bytes
@example(case=(False, ("web", "users", 0, "password"), "\u00e9" * 36))  # 72 bytes: fine
def test_validate_refuses_or_every_checker_accepts(
    case: tuple[bool, tuple[Any, ...], str], web_knobs: dict[str, Any], tmp_path: Path
) -> None:
    vlan, path, value = case
    data = _base(vlan)
    variables = appliance_vars(data)
    node: Any = variables
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    variables.update(copy.deepcopy(web_knobs))
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    inventory_file = work / "inventory.yml"
    inventory_file.write_text(_yaml(data) + "\n", encoding="utf-8")
    inventory = load_inventory(inventory_file)
    if errors(validate(inventory)):
        ran("hostile value: refused by validate")
        return  # refused: nothing reaches the Pi
    ran("hostile value: accepted, rendered, checked by the services")
    if not any(marker in value for marker in ("{{", "{%", "{#")):  # else Ansible templates it
        seen: Any = inventory.appliances[0].vars
        for key in path:
            seen = seen[key]
        assert seen == value, "the test must give validate the very value it means to"
    roles = ROLES_USING[path[0]]
    assert roles, f"no role takes {path[0]}: nothing to check"
    out = work / "out"
    render_appliance(inventory, HOST, out, roles=roles)
    wanted = {CHECKER_OF_ROLE[role] for role in roles}
    for verdict in check_rendered(out, web_knobs["web_nginx_conf"], wanted):
        assert verdict.accepted, f"{verdict.checker} refused {path}={value!r}:\n{verdict.output}"
    if path == ("wifi", "ssid"):
        # hostapd reads the rest of the line: the SSID arrives whole, on its own line.
        conf = (out / "etc/hostapd/hostapd.conf").read_text()
        assert f"\nssid={value}\n" in conf
