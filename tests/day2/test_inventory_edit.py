"""`camera list|add|remove|set`: edits touch only their lines and are validated before writing."""

from __future__ import annotations

import difflib
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import main
from appliance.inventory import load_inventory
from appliance.inventory_edit import (
    EditError,
    InventoryDocument,
    add_camera,
    next_free_ip,
    remove_camera,
    render_scalar,
    slugify,
)
from tests.cli_checks import assert_no_crash

FIXTURES = Path(__file__).parent / "fixtures"
SECURE_IDS = (
    "9f86d081884c7d659a2feaa0c55ad015",  # drive's, vault-encrypted in the file
    "a1b2c3d4e5f60718293a4b5c6d7e8f90",
    "0123456789abcdef0123456789abcdef",
)
NEW_SECURE_ID = "00112233445566778899aabbccddeeff"


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yml"
    shutil.copy(FIXTURES / "inventory.yml", path)
    path.chmod(0o600)
    return path


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    path = tmp_path / "vault-password"
    shutil.copy(FIXTURES / "vault-password", path)
    return path


def cli(inventory: Path, vault: Path | None, *args: str) -> tuple[int, str]:
    extra = ["--vault-password-file", str(vault)] if vault else []
    result = CliRunner().invoke(main, ["camera", *args, "-i", str(inventory), *extra])
    assert_no_crash(result)
    return result.exit_code, result.output


def changes(before: str, after: str) -> tuple[list[int], list[str]]:
    """(1-based numbers of original lines removed or replaced, lines added)."""
    touched: list[int] = []
    added: list[str] = []
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            touched += range(i1 + 1, i2 + 1)
            added += after.splitlines()[j1:j2]
    return touched, added


def vault_blocks(text: str) -> list[str]:
    return re.findall(r"!vault \|\n(?:[ ]+[0-9a-fA-Z$;._]+\n)+", text)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_list_hides_secure_ids(inventory, vault):
    code, output = cli(inventory, vault, "list")
    assert code == 0, output
    assert [line.split()[0] for line in output.splitlines()[1:]] == ["drive", "back", "side"]
    for secure_id in SECURE_IDS:
        assert secure_id not in output


def test_set_touches_only_the_edited_line(inventory, vault):
    before = inventory.read_text()
    code, output = cli(inventory, vault, "set", "side", "ip=10.42.0.13", "cloud=allow")
    assert code == 0, output
    after = inventory.read_text()
    touched, added = changes(before, after)
    assert touched == [line_of(before, "ip:   10.42.0.12"), line_of(before, "cloud: block   #")]
    # Spacing and the trailing comment of those very lines are kept too.
    assert added == [
        "            ip:   10.42.0.13",
        "            cloud: allow   # no cloud for this one",
    ]
    assert vault_blocks(after) == vault_blocks(before)
    assert len(vault_blocks(before)) == 2
    assert inventory.stat().st_mode & 0o777 == 0o600


def test_set_in_a_flow_mapping_keeps_its_quoting(inventory, vault):
    before = inventory.read_text()
    code, output = cli(inventory, vault, "set", "back", "ip=10.42.0.20", "vlan_id=20")
    assert code == 0, output
    touched, added = changes(before, inventory.read_text())
    assert touched == [line_of(before, "{name: back")]
    assert added == [
        "          - {name: back, mac: '70:ee:50:00:00:02', ip: 10.42.0.20, "
        "secure_id: 'a1b2c3d4e5f60718293a4b5c6d7e8f90', cloud: allow, vlan_id: 20}"
    ]
    camera = load_inventory(inventory, str(vault)).appliances[0].vars["cameras"][1]
    assert camera["vlan_id"] == 20 and camera["ip"] == "10.42.0.20"


def test_add_appends_only_new_lines(inventory, vault):
    before = inventory.read_text()
    code, output = cli(
        inventory,
        vault,
        "add",
        "porch",
        "--mac",
        "70:EE:50:00:00:04",
        "--secure-id",
        NEW_SECURE_ID,
    )
    assert code == 0, output
    after = inventory.read_text()
    touched, added = changes(before, after)
    assert touched == []
    assert after.startswith(before)  # appended after the last camera, the file's last line
    assert added[:3] == [
        "          - name: porch",
        '            mac: "70:ee:50:00:00:04"',
        "            ip: 10.42.0.2",
    ]
    # A vault password was given: the new secure id is written encrypted.
    assert "            secure_id: !vault |" in added
    assert NEW_SECURE_ID not in after and NEW_SECURE_ID not in output
    cameras = load_inventory(inventory, str(vault)).appliances[0].vars["cameras"]
    assert cameras[-1] == {
        "name": "porch",
        "mac": "70:ee:50:00:00:04",
        "ip": "10.42.0.2",
        "secure_id": NEW_SECURE_ID,
        "cloud": "block",
    }


def test_remove_drops_exactly_the_camera_lines(inventory, vault):
    before = inventory.read_text()
    code, output = cli(inventory, vault, "remove", "drive")
    assert code == 0, output
    after = inventory.read_text()
    touched, added = changes(before, after)
    first = line_of(before, "- name: drive")
    assert touched == list(range(first, first + 12))  # 5 key lines + 7 vault lines
    assert added == []
    assert "# Drive: the one over the garage" in after  # the comment above stays
    names = [c["name"] for c in load_inventory(inventory, str(vault)).appliances[0].vars["cameras"]]
    assert names == ["back", "side"]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (
            ("add", "dup", "--mac", "70:ee:50:00:00:02", "--secure-id", NEW_SECURE_ID),
            "cameras[3].mac: 70:ee:50:00:00:02 is already cameras[1]",
        ),
        (("set", "side", "ip=10.42.0.150"), "cameras[2].ip: 10.42.0.150 is inside dhcp_range"),
        (("set", "side", "name=Bad Name"), "cameras[2].name"),
        (("set", "side", "cloud=maybe"), "cameras[2].cloud"),
    ],
)
def test_invalid_edit_writes_nothing(inventory, vault, args, problem):
    before = inventory.read_bytes()
    code, output = cli(inventory, vault, *args)
    assert code == 1
    assert output.startswith(f"error: {inventory}: not changed: garden-pi: ")
    assert problem in output
    assert len(output.strip().splitlines()) == 1
    assert inventory.read_bytes() == before
    assert sorted(p.name for p in inventory.parent.iterdir()) == ["inventory.yml", "vault-password"]


def test_vault_encrypted_secure_id_needs_the_password(inventory, vault):
    before = inventory.read_bytes()
    with pytest.raises(EditError, match="vault-encrypted; give --vault-password-file"):
        from appliance.inventory_edit import set_camera

        set_camera(inventory, "drive", {"secure_id": NEW_SECURE_ID})
    assert inventory.read_bytes() == before
    code, output = cli(inventory, vault, "set", "drive", f"secure_id={NEW_SECURE_ID}")
    assert code == 0, output
    assert NEW_SECURE_ID not in output and "secure_id=<hidden>" in output
    after = inventory.read_text()
    assert NEW_SECURE_ID not in after
    camera = load_inventory(inventory, str(vault)).appliances[0].vars["cameras"][0]
    assert camera["secure_id"] == NEW_SECURE_ID
    # The wifi passphrase's vault block did not move.
    assert vault_blocks(after)[0] == vault_blocks(before.decode())[0]


def test_unknown_camera(inventory, vault):
    code, output = cli(inventory, vault, "remove", "garage")
    assert code == 1
    assert output.strip() == f"error: {inventory}: no camera 'garage' (cameras: back, drive, side)"


EMPTY = """\
all:
  children:
    appliances:
      hosts:
        pi-a:
          ansible_host: 10.203.60.2
          cameras: []   # none yet
        pi-b:
          ansible_host: 10.203.60.3
          cameras:
            - name: only
              mac: "70:ee:50:00:00:09"
              ip: 10.42.0.9
              secure_id: abc
"""


def test_flow_list_and_last_camera(tmp_path):
    path = tmp_path / "inventory.yml"
    path.write_text(EMPTY)
    with pytest.raises(EditError, match="several appliances"):
        add_camera(path, {"name": "x"})
    text = add_camera(
        path,
        {
            "name": "new",
            "mac": "70:ee:50:00:00:0a",
            "ip": "10.42.0.5",
            "secure_id": "def",
            "cloud": "block",
        },
        host="pi-a",
    )
    assert "          cameras:   # none yet\n            - name: new\n" in text
    doc = InventoryDocument(path, text)
    assert [n.value for n in doc.camera_list("pi-a").seq.value[0].value[0]] == ["name", "new"]
    # Removing the last camera leaves an explicit empty list, not a null.
    text = remove_camera(path, "only")
    assert "          cameras: []\n" in text
    assert text.count("\n") == EMPTY.count("\n") - 4


def test_helpers():
    assert slugify("Allée du Jardin!") == "allee-du-jardin"
    assert slugify("Drive", taken={"drive", "drive-2"}) == "drive-3"
    assert slugify("x" * 40, taken={"x" * 32}) == "x" * 30 + "-2"
    assert slugify("***") == "camera"
    assert render_scalar("mac", "12:34:56:12:34:56") == '"12:34:56:12:34:56"'
    assert render_scalar("ip", "10.42.0.2") == "10.42.0.2"
    assert render_scalar("secure_id", "yes") == '"yes"'  # a YAML 1.1 boolean otherwise
    assert render_scalar("name", "it's", "'") == "'it''s'"
    assert render_scalar("vlan_id", 20) == "20"
    net = {
        "camera_network": {"address": "10.42.0.1/28", "dhcp_range": ["10.42.0.2", "10.42.0.10"]},
        "cameras": [{"ip": "10.42.0.11"}],
    }
    assert next_free_ip(net) == "10.42.0.12"
    assert next_free_ip(net, taken={"10.42.0.12"}) == "10.42.0.13"
    with pytest.raises(EditError, match="no free address"):
        next_free_ip(net, taken={f"10.42.0.{i}" for i in range(12, 15)})


def move_cameras_to(inventory: Path, relative: str) -> Path:
    """Move the inline camera list into a vars file (de-indented); return the file."""
    text = inventory.read_text()
    start = text.index("        cameras:\n")
    inventory.write_text(text[:start])
    target = inventory.parent / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        "---\n# cameras of the garden\n"
        + "\n".join(line[8:] for line in text[start:].splitlines())
        + "\n"
    )
    return target


@pytest.mark.parametrize("relative", ["group_vars/appliances.yml", "host_vars/garden-pi.yml"])
def test_cameras_in_a_vars_file_are_edited_there(inventory, vault, relative):
    vars_file = move_cameras_to(inventory, relative)
    inventory_before, vars_before = inventory.read_bytes(), vars_file.read_text()
    code, output = cli(
        inventory, vault, "add", "porch", "--mac", "70:ee:50:00:00:04", "--secure-id", "ab" * 16
    )
    assert code == 0, output
    assert output.startswith(f"{vars_file}: added camera porch")
    assert inventory.read_bytes() == inventory_before
    assert vars_file.read_text().startswith(vars_before)
    code, output = cli(inventory, vault, "set", "side", "ip=10.42.0.13")
    assert code == 0, output
    touched, _ = changes(vars_before, vars_file.read_text())
    assert touched == [line_of(vars_before, "ip:   10.42.0.12")]
    code, output = cli(inventory, vault, "remove", "drive")
    assert code == 0, output
    names = [c["name"] for c in load_inventory(inventory, str(vault)).appliances[0].vars["cameras"]]
    assert names == ["back", "side", "porch"]
    assert inventory.read_bytes() == inventory_before
    # A refused edit of a vars file leaves it as it was, and no temp copy behind.
    current = vars_file.read_bytes()
    code, output = cli(inventory, vault, "set", "side", "ip=10.42.0.150")
    assert code == 1
    assert f"error: {inventory}: not changed: garden-pi: cameras[1].ip" in output
    assert vars_file.read_bytes() == current
    assert not [p for p in inventory.parent.rglob(".*") if p.name != ".presence-appliance"]


def test_a_shadowed_edit_is_refused(inventory, vault):
    """group_vars/all.yml ranks above the inline group vars: an inline list would not count."""
    move_cameras_to(inventory, "group_vars/all.yml")
    code, output = cli(inventory, vault, "list")
    assert code == 0 and "drive" in output
    before = inventory.read_bytes()
    code, output = cli(
        inventory, vault, "add", "porch", "--mac", "70:ee:50:00:00:04", "--secure-id", "ab" * 16
    )
    assert code == 1
    assert "the edit does not show in the cameras Ansible sees" in output
    assert inventory.read_bytes() == before


def test_a_new_list_must_not_hide_cameras(inventory, vault):
    """Cameras in `all: vars:` rank below `appliances: vars:`: a new list there would
    hide them, so that edit is refused."""
    text = inventory.read_text()
    start = text.index("        cameras:\n")
    cameras_block = "".join(line[4:] + "\n" for line in text[start:].splitlines())
    inventory.write_text(text[:start].replace("all:\n", "all:\n  vars:\n" + cameras_block, 1))
    code, output = cli(inventory, vault, "list")
    assert code == 0 and "drive" in output
    before = inventory.read_bytes()
    code, output = cli(
        inventory, vault, "add", "porch", "--mac", "70:ee:50:00:00:04", "--secure-id", "ab" * 16
    )
    assert code == 1
    assert "the edit would hide cameras back, drive, side" in output
    assert inventory.read_bytes() == before


def test_crlf_files_keep_their_line_endings(inventory, vault):
    inventory.write_bytes(inventory.read_bytes().replace(b"\n", b"\r\n"))
    before = inventory.read_bytes()
    code, output = cli(
        inventory, vault, "add", "porch", "--mac", "70:ee:50:00:00:04", "--secure-id", "ab" * 16
    )
    assert code == 0, output
    after = inventory.read_bytes()
    assert after.startswith(before)
    assert b"\n" not in after.replace(b"\r\n", b"")
    code, output = cli(inventory, vault, "remove", "porch")
    assert code == 0, output
    assert inventory.read_bytes() == before
