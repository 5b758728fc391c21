"""Every Unicode scalar value round-trips through an inventory edit, byte for byte, as Ansible
reads it; a refused edit says so in exactly one line."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import main
from appliance.inventory_edit import (
    STRING_KEYS,
    EditError,
    InventoryDocument,
    double_quoted,
    render_scalar,
    set_camera_in,
)
from tests.cli_checks import assert_no_crash

FIXTURES = Path(__file__).parent / "fixtures"
# Every string key `camera set` writes, and a free key (notes are common).
FIELDS = (*STRING_KEYS, "note")
SCALAR_VALUES = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]  # no surrogates
CHUNK = 1 << 16
# What a value may start with that YAML reads specially (the value began with a quote).
PREFIXES = ("'", '"', "- ", "# ", ": ", "? ", "!", "&a ", "*a", "|", ">", "%", "@", "`", " ", "")


def _chunks() -> Iterator[str]:
    """The whole range in chunks of 64 Ki code points, each behind an awkward prefix."""
    for n, start in enumerate(range(0, len(SCALAR_VALUES), CHUNK)):
        text = "".join(map(chr, SCALAR_VALUES[start : start + CHUNK]))
        yield PREFIXES[n % len(PREFIXES)] + text


def _ansible_load(text: str) -> object:
    from ansible.parsing.dataloader import DataLoader

    return DataLoader().load(text)


@pytest.mark.parametrize("quote", [None, "'", '"'])
@pytest.mark.parametrize("field", FIELDS)
def test_every_code_point_round_trips_through_ansibles_reader(
    field: str, quote: str | None
) -> None:
    """QUOTE is the style of the value being replaced: an edit keeps it where it can."""
    for chunk in _chunks():
        # A '…' value can only stay single-quoted when every character may stand raw in it:
        # give that style the chunk without the rest too, or it would never be taken.
        value = "".join(c for c in chunk if c.isprintable()) if quote == "'" else chunk
        rendered = render_scalar(field, value, quote)
        assert _ansible_load(f"k: {rendered}\n") == {"k": value}, (field, quote, value[:8])


def test_astral_characters_are_written_as_themselves() -> None:
    """Not as JSON's surrogate pairs (`\\ud83c\\udfe0`), which YAML refuses."""
    assert double_quoted("'Haus \U0001f3e0") == '"\'Haus \U0001f3e0"'
    assert render_scalar("note", "'Haus \U0001f3e0") == '"\'Haus \U0001f3e0"'
    # What YAML cannot hold raw is escaped with the escape of its width.
    assert double_quoted("\x00\x7f\x85\u2028\ufeff\U000e0001\t") == (
        '"\\x00\\x7f\\x85\\u2028\\ufeff\U000e0001\\x09"'
    )


# One code point of every 256 and the ones YAML treats specially: small enough to splice into
# a real inventory for every field in every place the fixture puts a camera's keys.
SAMPLE = "'" + "".join(
    chr(c)
    for c in [
        *SCALAR_VALUES[::256],
        *(0x0, 0x9, 0xA, 0xD, 0x22, 0x27, 0x5C, 0x7F, 0x85, 0xA0),
        *(0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF, 0x1F3E0, 0x10000, 0x10FFFF),
    ]
)


@pytest.mark.parametrize(
    ("camera", "field"),
    # drive: a block mapping; back: a flow mapping of '…' values; side: plain values. drive's
    # secure_id is vault-encrypted (an edit re-encrypts it: the vault tests cover that).
    [
        (camera, field)
        for camera in ("drive", "back", "side")
        for field in FIELDS
        if (camera, field) != ("drive", "secure_id")
    ],
)
def test_edits_in_a_real_inventory_round_trip(field: str, camera: str, tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    shutil.copy(FIXTURES / "inventory.yml", path)
    doc = InventoryDocument(path)
    set_camera_in(doc, camera, {field: SAMPLE})
    cameras = _ansible_load(doc.text)["all"]["children"]["appliances"]["vars"]["cameras"]  # type: ignore[index]
    assert (
        next(c for c in cameras if c["name"] == (SAMPLE if field == "name" else camera))[field]
        == SAMPLE
    )
    # The file holds the astral characters as their own UTF-8 bytes.
    assert "\U0001f3e0".encode() in doc.text.encode()


def test_a_lone_surrogate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    shutil.copy(FIXTURES / "inventory.yml", path)
    with pytest.raises(EditError, match="not valid Unicode text"):
        set_camera_in(InventoryDocument(path), "side", {"note": "a\udcffb"})


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yml"
    shutil.copy(FIXTURES / "inventory.yml", path)
    shutil.copy(FIXTURES / "vault-password", tmp_path / "vault-password")
    return path


def _camera(inventory: Path, *args: str) -> tuple[int, str]:
    vault = str(inventory.parent / "vault-password")
    result = CliRunner().invoke(
        main, ["camera", *args, "-i", str(inventory), "--vault-password-file", vault]
    )
    assert_no_crash(result, allowed=(0, 1))
    return result.exit_code, result.output


def test_an_emoji_after_a_quote_is_written_as_is(inventory: Path) -> None:
    """The issue's reproduction: `camera set einfahrt "note='Haus 🏠"` was refused."""
    code, output = _camera(inventory, "set", "drive", "note='Haus \U0001f3e0")
    assert code == 0, output
    assert 'note: "\'Haus \U0001f3e0"\n'.encode() in inventory.read_bytes()
    from appliance.inventory import load_inventory

    cameras = load_inventory(inventory, str(inventory.parent / "vault-password")).appliances[0]
    assert cameras.vars["cameras"][0]["note"] == "'Haus \U0001f3e0"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("set", "side", "ip=10.42.0.300"), "cameras[2].ip"),
        (("set", "side", "name=side\n"), "cameras[2].name"),
        (("set", "side", "note=a\udcffb"), "not valid Unicode text"),
        (("set", "side", "note={{ lookup('pipe', 'id') }}"), "Ansible would run it as a template"),
        (("set", "side", "note={% if 1 %}x{% endif %}"), "Ansible would run it as a template"),
        (("set", "nobody", "ip=10.42.0.30"), "no camera 'nobody'"),
        (("set", "side", "note\n=x"), "is not a key name"),  # would split the YAML line
        (("set", "side", "ip=10.42.0.10", "mac=70:ee:50:00:00:01"), "already cameras[0]"),
        (("add", "x", "--mac", "zz", "--secure-id", "ab" * 16), "cameras[3].mac"),
    ],
)
def test_a_refused_edit_prints_exactly_one_line(
    inventory: Path, args: tuple[str, ...], says: str
) -> None:
    before = inventory.read_bytes()
    code, output = _camera(inventory, *args)
    assert code == 1, output
    assert len(output.splitlines()) == 1, output
    assert output.startswith("error: ") and says in output, output
    assert inventory.read_bytes() == before
