"""Edit the camera list of an inventory in place, touching only the edited lines.

ruamel.yaml parses the file (round-trip composer, with exact positions); the edits are
then spliced into the original text, so comments, key order, quoting, spacing and
`!vault |` blocks outside the edited lines stay byte for byte (a ruamel dump would
re-indent and re-space them). Every edit is validated with the project's schema
before the file is replaced atomically.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

APPLIANCE_GROUP = "appliances"
# Keys whose values are secrets: encrypted with the vault password when one is given.
SECRET_KEYS = ("secure_id", "passphrase", "ftp_password")
# Keys always written as strings (a MAC like 12:34:56:12:34:56 is a number to YAML 1.1).
STRING_KEYS = ("name", "mac", "ip", "secure_id", "passphrase", "cloud", "ftp_password")
CAMERA_KEY_ORDER = ("name", "mac", "ip", "secure_id", "cloud")


class EditError(Exception):
    """The edit cannot be made; one line naming the file (and the place)."""


# ---------------------------------------------------------------------------
# Rendering values as YAML text


# Jinja's delimiters: Ansible templates every inventory value, so an edit never writes them.
TEMPLATE_MARKERS = ("{{", "{%", "{#")
# A key an edit may write (a plain YAML key that needs no quoting and splits nothing).
EDIT_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _raw_ok(char: str) -> bool:
    """True when CHAR may stand unescaped in a quoted scalar and every YAML reader (libyaml as
    Ansible uses it, PyYAML, ruamel) reads it back as itself: printable, not a line break
    (YAML 1.1 breaks lines at NEL, U+2028 and U+2029), not a byte-order mark."""
    code = ord(char)
    return (
        0x20 <= code <= 0x7E
        or (0xA0 <= code <= 0xD7FF and code not in (0x2028, 0x2029))
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
        or 0x10000 <= code <= 0x10FFFF
    )


def double_quoted(text: str) -> str:
    """TEXT as a YAML double-quoted scalar: characters outside the BMP stay as they are (UTF-8
    in the file, never the surrogate pairs JSON would write, which YAML rejects); only what is
    not printable is escaped, with the escape of its exact width."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif _raw_ok(char):
            out.append(char)
        elif ord(char) <= 0xFF:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


# Characters a plain (unquoted) value may hold in a block *and* a flow (`{...}`) mapping.
_PLAIN_PUNCTUATION = frozenset(" ._/+-=()~^$;")


def _plain_ok(text: str) -> bool:
    """True when TEXT reads back as the same string without quotes (YAML 1.1, as Ansible reads),
    wherever it is written: letters, digits and a few harmless signs only (`,[]{}` end a value
    in a flow mapping, `:` and `#` may start a key or a comment)."""
    if not text or text != text.strip():
        return False
    if not all((c.isalnum() and _raw_ok(c)) or c in _PLAIN_PUNCTUATION for c in text):
        return False
    try:
        return yaml.safe_load(f"k: {text}\n") == {"k": text}
    except yaml.YAMLError:
        return False


def render_scalar(key: str, value: Any, quote: str | None = None) -> str:
    """VALUE as inline YAML; QUOTE is the style of the value it replaces (' or " or None)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and key not in STRING_KEYS:
        return str(value)
    if value is None:
        return "null"
    text = str(value)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        # A lone surrogate (undecodable bytes on the command line) is no Unicode text.
        raise EditError(f"{key}: the value is not valid Unicode text")
    if quote == "'" and all(_raw_ok(c) for c in text):
        return "'" + text.replace("'", "''") + "'"
    if quote == '"' or key == "mac" or not _plain_ok(text):
        return double_quoted(text)
    return text


def check_edit(path: Path, key: str, value: Any) -> None:
    """Refuse what an edit must never write: a key that is not a plain name, or a value that
    Ansible would run as a template (values come from the command line or Netatmo's cloud)."""
    if not isinstance(key, str) or not EDIT_KEY.fullmatch(key):
        raise EditError(f"{path}: {str(key)[:40]!r} is not a key name (letters, digits, _)")
    if isinstance(value, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise EditError(f"{path}: {key}: the value is not valid Unicode text")
    if isinstance(value, str) and any(m in value for m in TEMPLATE_MARKERS):
        raise EditError(
            f"{path}: {key}: a value may not contain '{{{{', '{{%' or '{{#' "
            "(Ansible would run it as a template)"
        )


def vault_block(ciphertext: str, indent: int) -> str:
    """`!vault |` and the indented ciphertext lines (ending with a newline)."""
    pad = " " * indent
    lines = [pad + line for line in ciphertext.strip().splitlines()]
    return "!vault |\n" + "\n".join(lines) + "\n"


def vault_encrypt(plaintext: str, vault_password_file: str) -> str:
    """Encrypt PLAINTEXT with the vault password file, as `ansible-vault encrypt_string` does."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultLib, get_file_vault_secret

    try:
        secret = get_file_vault_secret(filename=vault_password_file, loader=DataLoader())
        secret.load()
        return VaultLib([("default", secret)]).encrypt(plaintext).decode()
    except Exception as err:  # Ansible raises its own error types for unreadable files
        raise EditError(f"{vault_password_file}: cannot encrypt with it: {err}") from None


# ---------------------------------------------------------------------------
# The document: text plus its node tree


def _compose(text: str, path: Path) -> Node:
    try:
        node = YAML().compose(text)
    except YAMLError as err:
        raise EditError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(node, MappingNode):
        raise EditError(f"{path}: not a YAML inventory (top level is not a mapping)")
    return node


def _get(mapping: Node | None, key: str) -> tuple[ScalarNode, Node] | None:
    if not isinstance(mapping, MappingNode):
        return None
    for k, v in mapping.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return k, v
    return None


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag.endswith(":null")


@dataclass
class CameraList:
    """A `cameras:` list in the file (or the place one would go) and whose list it is."""

    owner: str  # "group" or the host's name
    parent: MappingNode  # the vars mapping holding (or to hold) `cameras`
    key: ScalarNode | None
    seq: Node | None  # SequenceNode, or None when there is no `cameras` key yet
    doc: YamlText  # the file it is in: the inventory, or a group_vars/host_vars file
    name: str = "cameras"  # the list's key (list_at finds lists under other keys)

    @property
    def where(self) -> tuple[Path, int]:
        """Identifies the list (file and position) while the text does not change."""
        return self.doc.path, self.seq.start_mark.index if self.seq is not None else -1


class YamlText:
    """A YAML file held as text; each edit splices the text and re-parses."""

    def __init__(self, path: Path, text: str | None = None):
        self.path = path
        try:
            if text is None:
                # newline="": keep "\r\n" as it is (no translation on read or write).
                with open(path, encoding="utf-8", newline="") as handle:
                    text = handle.read()
            self.text = self.original = text
        except OSError as err:
            raise EditError(f"{path}: cannot read: {err.strerror or err}") from None
        except UnicodeDecodeError:
            raise EditError(f"{path}: not UTF-8 text") from None
        self.root = _compose(self.text, path)

    def _splice(self, start: int, end: int, new: str) -> None:
        if "\r\n" in self.text:
            # Keep a Windows-edited file's line endings.
            new = new.replace("\r\n", "\n").replace("\n", "\r\n")
        self.text = self.text[:start] + new + self.text[end:]
        self.root = _compose(self.text, self.path)

    # -- positions ---------------------------------------------------------

    def _line_start(self, index: int) -> int:
        return self.text.rfind("\n", 0, index) + 1

    def _line_end(self, index: int) -> int:
        """Index just past the newline ending the line that holds INDEX."""
        end = self.text.find("\n", index)
        return len(self.text) if end < 0 else end + 1

    def _last_index(self, node: Node) -> int:
        """Index of the last character that belongs to NODE's content."""
        if isinstance(node, ScalarNode) or getattr(node, "flow_style", False):
            end = node.end_mark.index
            # Block scalars end after their trailing line breaks; step back over them.
            while end > node.start_mark.index and self.text[end - 1] in " \n\r":
                end -= 1
            return max(end - 1, node.start_mark.index)
        children = [v for _, v in node.value] if isinstance(node, MappingNode) else node.value
        if not children:
            return node.end_mark.index - 1
        return self._last_index(children[-1])

    def _after_node_line(self, node: Node) -> int:
        """Index of the line following NODE's last line (where a sibling would be inserted)."""
        return self._line_end(self._last_index(node))

    # -- edits -------------------------------------------------------------

    def set_key(
        self, mapping: MappingNode, key: str, rendered: str | None, vault: str | None = None
    ) -> None:
        """Set KEY of MAPPING to an inline value (RENDERED) or a vault block (VAULT ciphertext)."""
        found = _get(mapping, key)
        if found is not None:
            key_node, value = found
            if not isinstance(value, ScalarNode):
                raise EditError(f"{self.path}: {key} is not a single value; edit it by hand")
            start, end = value.start_mark.index, value.end_mark.index
            is_block = value.style in ("|", ">")
            if vault is not None:
                if mapping.flow_style:
                    raise EditError(f"{self.path}: cannot put a vault block in a {{...}} mapping")
                # Keep a comment that followed the old value on its line.
                line_end = self._line_end(end - 1 if is_block else end)
                rest = "" if is_block else self.text[end:line_end].rstrip("\n")
                header_comment = rest if rest.strip().startswith("#") else ""
                indent = self._block_indent(value) or key_node.start_mark.column + 2
                block = vault_block(vault, indent)
                new = block.replace("!vault |", "!vault |" + header_comment, 1)
                self._splice(start, line_end if not is_block else self._block_end(value), new)
                return
            if is_block:
                self._splice(start, self._block_end(value), rendered + "\n")
            else:
                self._splice(start, end, rendered)
            return
        self._insert_key(mapping, key, rendered, vault)

    def _block_indent(self, value: ScalarNode) -> int:
        if value.style not in ("|", ">"):
            return 0
        first = self._line_end(value.start_mark.index)
        line = self.text[first : self._line_end(first)]
        return len(line) - len(line.lstrip(" "))

    def _block_end(self, value: ScalarNode) -> int:
        """End of a block scalar's own lines (trailing blank lines stay in the file)."""
        return self._line_end(self._last_index(value))

    def _insert_key(
        self, mapping: MappingNode, key: str, rendered: str | None, vault: str | None
    ) -> None:
        if mapping.flow_style:
            if vault is not None:
                raise EditError(f"{self.path}: cannot put a vault block in a {{...}} mapping")
            close = mapping.end_mark.index - 1  # the closing brace
            sep = ", " if mapping.value else ""
            self._splice(close, close, f"{sep}{key}: {rendered}")
            return
        if not mapping.value:
            raise EditError(f"{self.path}: empty mapping; edit it by hand")
        column = mapping.value[0][0].start_mark.column
        at = self._after_node_line(mapping)
        if vault is not None:
            line = " " * column + f"{key}: " + vault_block(vault, column + 2)
        else:
            line = " " * column + f"{key}: {rendered}\n"
        self._splice(at, at, line)

    def append_camera(
        self, cameras: CameraList, fields: list[tuple[str, str | None, str | None]]
    ) -> None:
        """Add a camera (FIELDS: key, rendered value, vault ciphertext) at the end of the list."""
        seq = cameras.seq
        if seq is None:
            column = cameras.parent.value[0][0].start_mark.column
            at = self._after_node_line(cameras.parent)
            self._splice(
                at, at, " " * column + f"{cameras.name}:\n" + self._block_item(fields, column + 2)
            )
            return
        if not isinstance(seq, SequenceNode):
            if _is_null(seq) and cameras.key is not None:
                # `cameras:` with nothing after it: the items go on the next lines.
                at = self._line_end(cameras.key.end_mark.index)
                column = cameras.key.start_mark.column + 2
                self._splice(at, at, self._block_item(fields, column))
                return
            raise EditError(f"{self.path}: `{cameras.name}` is not a list")
        if seq.flow_style:
            if not seq.value:
                # `cameras: []` becomes a block list under the key (a comment stays put).
                start, end = seq.start_mark.index, seq.end_mark.index
                while start > 0 and self.text[start - 1] == " ":
                    start -= 1
                at = self._line_end(end) - (end - start)
                column = (cameras.key.start_mark.column if cameras.key else 0) + 2
                self._splice(start, end, "")
                self._splice(at, at, self._block_item(fields, column))
                return
            if any(v is not None for _, _, v in fields):
                raise EditError(f"{self.path}: cannot put a vault block in a [...] list")
            close = seq.end_mark.index - 1
            self._splice(close, close, ", " + self._flow_item(fields))
            return
        last = seq.value[-1]
        dash_column = seq.start_mark.column
        at = self._after_node_line(last)
        if (
            isinstance(last, MappingNode)
            and last.flow_style
            and all(v is None for _, _, v in fields)
        ):
            self._splice(at, at, " " * dash_column + "- " + self._flow_item(fields) + "\n")
            return
        self._splice(at, at, self._block_item(fields, dash_column, last.start_mark.column))

    @staticmethod
    def _flow_item(fields: list[tuple[str, str | None, str | None]]) -> str:
        return "{" + ", ".join(f"{k}: {r}" for k, r, _ in fields) + "}"

    @staticmethod
    def _block_item(
        fields: list[tuple[str, str | None, str | None]],
        dash_column: int,
        key_column: int | None = None,
    ) -> str:
        key_column = dash_column + 2 if key_column is None else key_column
        lines = []
        for i, (key, rendered, vault) in enumerate(fields):
            prefix = (
                " " * dash_column + "- " + " " * (key_column - dash_column - 2)
                if i == 0
                else " " * key_column
            )
            if vault is not None:
                lines.append(f"{prefix}{key}: " + vault_block(vault, key_column + 2))
            else:
                lines.append(f"{prefix}{key}: {rendered}\n")
        return "".join(lines)

    def remove_camera(self, cameras: CameraList, index: int) -> None:
        seq = cameras.seq
        assert isinstance(seq, SequenceNode)
        item = seq.value[index]
        if seq.flow_style:
            if len(seq.value) == 1:
                start, end = item.start_mark.index, item.end_mark.index
            elif index + 1 < len(seq.value):
                start, end = item.start_mark.index, seq.value[index + 1].start_mark.index
            else:
                start, end = seq.value[index - 1].end_mark.index, item.end_mark.index
            self._splice(start, end, "")
            return
        dash = self.text.rfind("-", 0, item.start_mark.index)
        start = self._line_start(dash)
        end = self._after_node_line(item)
        if len(seq.value) == 1 and cameras.key is not None:
            # The list would become null; say "no cameras" explicitly.
            self._splice(start, end, "")
            colon = self.text.index(":", cameras.key.end_mark.index)
            self._splice(colon + 1, colon + 1, " []")
            return
        self._splice(start, end, "")


class InventoryDocument(YamlText):
    """The inventory file, plus the group_vars/host_vars files next to it that hold cameras.

    A host's camera list is, as Ansible ranks them: host_vars/<host>, the host's inline
    vars, group_vars/appliances, the group's inline vars. Edits go where the list is.
    """

    def __init__(self, path: Path, text: str | None = None):
        super().__init__(path, text)
        self.vars_files: dict[Path, YamlText] = {}

    def _vars_file(self, kind: str, name: str, key: str = "cameras") -> YamlText | None:
        """The file of group_vars/NAME or host_vars/NAME that has KEY, if any."""
        folder = self.path.parent / kind
        candidates = [folder / f"{name}.yml", folder / f"{name}.yaml", folder / name]
        if (folder / name).is_dir():
            candidates = sorted(
                p for p in (folder / name).iterdir() if p.suffix in (".yml", ".yaml")
            )
        for candidate in candidates:
            if not candidate.is_file():
                continue
            if candidate not in self.vars_files:
                try:
                    self.vars_files[candidate] = YamlText(candidate)
                except EditError:
                    continue  # not YAML we can edit (e.g. a whole-file vault): not ours
            doc = self.vars_files[candidate]
            if _get(doc.root, key) is not None:
                return doc
        return None

    def files(self) -> dict[Path, str]:
        """Every file's current text (edited or not)."""
        return {self.path: self.text, **{p: d.text for p, d in self.vars_files.items()}}

    # -- the structure -----------------------------------------------------

    def group(self) -> MappingNode:
        found = _get(self.root, "all")
        children = _get(found[1], "children") if found else None
        group = _get(children[1], APPLIANCE_GROUP) if children else None
        if group is None:
            group = _get(self.root, APPLIANCE_GROUP)
        if group is None or not isinstance(group[1], MappingNode):
            raise EditError(
                f"{self.path}: no inline group '{APPLIANCE_GROUP}' (all.children.appliances); "
                "camera edits need an inline YAML inventory"
            )
        return group[1]

    def hosts(self) -> dict[str, Node]:
        found = _get(self.group(), "hosts")
        if found is None or not isinstance(found[1], MappingNode):
            return {}
        return {k.value: v for k, v in found[1].value if isinstance(k, ScalarNode)}

    def camera_list(self, host: str) -> CameraList:
        """The list that applies to HOST: its own `cameras`, else the group's."""
        host_file = self._vars_file("host_vars", host)
        if host_file is not None:
            key, seq = _get(host_file.root, "cameras")  # type: ignore[misc]
            return CameraList(host, host_file.root, key, seq, host_file)  # type: ignore[arg-type]
        host_vars = self.hosts().get(host)
        own = _get(host_vars, "cameras")
        if own is not None:
            return CameraList(host, host_vars, own[0], own[1], self)  # type: ignore[arg-type]
        group_file = self._vars_file("group_vars", APPLIANCE_GROUP)
        if group_file is not None:
            key, seq = _get(group_file.root, "cameras")  # type: ignore[misc]
            return CameraList("group", group_file.root, key, seq, group_file)  # type: ignore[arg-type]
        group_vars = _get(self.group(), "vars")
        if group_vars is not None and isinstance(group_vars[1], MappingNode):
            found = _get(group_vars[1], "cameras")
            if found is not None:
                return CameraList("group", group_vars[1], found[0], found[1], self)
            if len(self.hosts()) <= 1:
                return CameraList("group", group_vars[1], None, None, self)
        if isinstance(host_vars, MappingNode):
            return CameraList(host, host_vars, None, None, self)
        raise EditError(
            f"{self.path}: appliance {host!r} has no variables to add a `cameras:` list to; "
            "add `cameras: []` under it (or under the group's vars) first"
        )

    def list_at(self, host: str, path: tuple[str, ...]) -> CameraList:
        """The list at PATH (mapping keys, the last one the list's: `remote_access`,
        `wireguard`, `peers`) that applies to HOST, in the vars that define PATH[0] as
        Ansible ranks them. Its seq is None when only the last key is missing."""
        top = path[0]
        places: list[tuple[str, Node | None, YamlText]] = []
        host_file = self._vars_file("host_vars", host, top)
        if host_file is not None:
            places.append((host, host_file.root, host_file))
        places.append((host, self.hosts().get(host), self))
        group_file = self._vars_file("group_vars", APPLIANCE_GROUP, top)
        if group_file is not None:
            places.append(("group", group_file.root, group_file))
        group_vars = _get(self.group(), "vars")
        places.append(("group", group_vars[1] if group_vars else None, self))
        for owner, mapping, doc in places:
            if _get(mapping, top) is None:
                continue
            parent = mapping
            for depth, key in enumerate(path[:-1], start=1):
                found = _get(parent, key)
                if found is None or _is_null(found[1]):
                    raise EditError(f"{doc.path}: {host} has no {'.'.join(path[:depth])}")
                if not isinstance(found[1], MappingNode):
                    raise EditError(f"{doc.path}: {'.'.join(path[:depth])} is not a mapping")
                parent = found[1]
            last = _get(parent, path[-1])
            if last is None:
                return CameraList(owner, parent, None, None, doc, name=path[-1])
            return CameraList(owner, parent, last[0], last[1], doc, name=path[-1])
        raise EditError(f"{self.path}: {host} has no {top}")

    def hosts_using(self, cameras: CameraList) -> list[str]:
        """The hosts whose effective camera list is CAMERAS (the group's may serve several)."""
        if cameras.owner != "group":
            return [cameras.owner]
        return [h for h in self.hosts() if self.camera_list(h).where == cameras.where]

    def pick_host(self, host: str | None) -> str:
        hosts = list(self.hosts())
        if host is not None:
            if host not in hosts:
                raise EditError(
                    f"{self.path}: no appliance {host!r} (appliances: {', '.join(hosts)})"
                )
            return host
        if len(hosts) == 1:
            return hosts[0]
        if not hosts:
            raise EditError(f"{self.path}: no hosts in group '{APPLIANCE_GROUP}'")
        raise EditError(
            f"{self.path}: several appliances ({', '.join(hosts)}); choose one with --host"
        )

    def find_camera(self, name: str, host: str | None) -> tuple[CameraList, int]:
        """The list holding camera NAME and its index there."""
        hosts = [self.pick_host(host)] if host else list(self.hosts())
        found: dict[tuple[Path, int], tuple[CameraList, int]] = {}
        names: set[str] = set()
        for h in hosts:
            cameras = self.camera_list(h)
            if not isinstance(cameras.seq, SequenceNode):
                continue
            for index, item in enumerate(cameras.seq.value):
                item_name = _get(item, "name")
                if item_name is None or not isinstance(item_name[1], ScalarNode):
                    continue
                names.add(item_name[1].value)
                if item_name[1].value == name:
                    found[cameras.where] = (cameras, index)
        if not found:
            listed = ", ".join(sorted(names)) or "none"
            raise EditError(f"{self.path}: no camera {name!r} (cameras: {listed})")
        if len(found) > 1:
            raise EditError(f"{self.path}: camera {name!r} is in several lists; choose with --host")
        return next(iter(found.values()))


# ---------------------------------------------------------------------------
# Addresses


def next_free_ip(appliance_vars: dict[str, Any], taken: Iterable[str] = ()) -> str:
    """The lowest address of the camera subnet that is not the Pi's, not in the DHCP range
    and not already a camera's (nor in TAKEN)."""
    net = appliance_vars.get("camera_network") or {}
    try:
        interface = ipaddress.ip_interface(str(net.get("address")))
    except ValueError:
        raise EditError("camera_network.address is missing or not an address/prefix") from None
    used = {str(interface.ip), *taken}
    used |= {str(c.get("ip")) for c in appliance_vars.get("cameras") or [] if isinstance(c, dict)}
    dhcp = net.get("dhcp_range") or []
    try:
        first, last = (
            (ipaddress.ip_address(str(a)) for a in dhcp) if len(dhcp) == 2 else (None, None)
        )
    except ValueError:
        first = last = None
    for address in interface.network.hosts():
        if first is not None and last is not None and first <= address <= last:
            continue
        if str(address) not in used:
            return str(address)
    raise EditError(f"no free address left in {interface.network} outside the DHCP range")


def slugify(text: str, taken: Iterable[str] = ()) -> str:
    """A camera name [a-z0-9-]{1,32} from free text, unique among TAKEN."""
    # Accented letters keep their base letter: "Allée" -> "allee".
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:32].strip("-") or "camera"
    taken = set(taken)
    name, n = base, 2
    while name in taken:
        suffix = f"-{n}"
        name = base[: 32 - len(suffix)].rstrip("-") + suffix
        n += 1
    return name


# ---------------------------------------------------------------------------
# Validate, then write


# What an edit must have achieved, checked on the edited inventory as Ansible loads it
# (a list in group_vars/ or host_vars/ files would shadow the inline one we edited).
Expectation = Callable[[Any], "str | None"]


def expect_camera(
    hosts: list[str],
    name: str,
    present: bool = True,
    values: dict[str, Any] | None = None,
    keep: Iterable[str] = (),
) -> Expectation:
    """An Expectation: camera NAME is (not) among the cameras of HOSTS, with VALUES, and
    the cameras named in KEEP are still there (a new list must not hide an older one)."""
    keep = set(keep)

    def check(inventory: Any) -> str | None:
        for appliance in inventory.appliances:
            if appliance.name not in hosts:
                continue
            cameras = [c for c in appliance.vars.get("cameras") or [] if isinstance(c, dict)]
            lost = keep - {str(c.get("name")) for c in cameras}
            if lost:
                return (
                    f"{appliance.name}: the edit would hide cameras {', '.join(sorted(lost))} "
                    "(their list is in a file camera commands do not edit): edit it by hand"
                )
            match = next((c for c in cameras if c.get("name") == name), None)
            took = (match is not None) == present and all(
                match is not None and str(match.get(k)) == str(v) for k, v in (values or {}).items()
            )
            if not took:
                return (
                    f"{appliance.name}: the edit does not show in the cameras Ansible sees "
                    "(another vars file overrides this list?): edit it by hand"
                )
        return None

    return check


def all_of(*expectations: Expectation) -> Expectation:
    def check(inventory: Any) -> str | None:
        return next((m for e in expectations if (m := e(inventory))), None)

    return check


def _problems(
    path: Path, vault_password_file: str | None, expect: Expectation | None = None
) -> list[str]:
    from appliance.inventory import InventoryError, load_inventory
    from appliance.schema import validate

    try:
        inventory = load_inventory(path, vault_password_file)
    except InventoryError as err:
        return [str(err)]
    problems = [str(p) for p in validate(inventory) if p.severity == "error"]
    missed = expect(inventory) if expect else None
    return problems + ([missed] if missed else [])


def save(
    path: Path,
    new_text: str,
    vault_password_file: str | None = None,
    expect: Expectation | None = None,
) -> None:
    """Validate NEW_TEXT as the inventory at PATH, then replace PATH with it atomically.

    Refuses (EditError naming PATH and the problem; nothing written) when the edit adds
    a schema error that the file did not already have, or when EXPECT finds that the
    edit does not show in the variables Ansible computes.
    """
    before = set(_problems(path, vault_password_file))
    # Next to the inventory, so group_vars/ and host_vars/ still apply to it.
    fd, tmp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.edit-", suffix=path.suffix
    )
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(new_text)
        after = [
            p.replace(str(tmp), str(path)) for p in _problems(tmp, vault_password_file, expect)
        ]
        new = [p for p in after if p not in before]
        if new:
            more = f" (and {len(new) - 1} more)" if len(new) > 1 else ""
            raise EditError(f"{path}: not changed: {new[0]}{more}")
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_document(
    doc: InventoryDocument,
    vault_password_file: str | None = None,
    expect: Expectation | None = None,
) -> list[Path]:
    """Validate and write every file DOC changed (the inventory and/or vars files).

    Returns the files written. Vars files cannot be validated in place (Ansible finds
    them by name), so then the inventory with its group_vars/ and host_vars/ is copied
    into a temp folder next to it, validated there before and after the edit, and only
    then are the real files replaced.
    """
    changed = {p: t for p, t in doc.files().items() if t != _original(doc, p)}
    if not changed:
        return []
    if list(changed) == [doc.path]:
        save(doc.path, doc.text, vault_password_file, expect)
        return [doc.path]
    base = doc.path.parent
    workdir = Path(tempfile.mkdtemp(dir=base, prefix=".presence-edit-"))
    try:
        shutil.copy2(doc.path, workdir / doc.path.name)
        for folder in ("group_vars", "host_vars"):
            if (base / folder).is_dir():
                shutil.copytree(base / folder, workdir / folder, symlinks=True)
        copy = workdir / doc.path.name
        before = set(_problems(copy, vault_password_file))
        for path, text in changed.items():
            with open(workdir / path.relative_to(base), "w", encoding="utf-8", newline="") as out:
                out.write(text)
        after = [
            p.replace(str(workdir), str(base)) for p in _problems(copy, vault_password_file, expect)
        ]
        new = [p for p in after if p not in before]
        if new:
            more = f" (and {len(new) - 1} more)" if len(new) > 1 else ""
            raise EditError(f"{doc.path}: not changed: {new[0]}{more}")
        for path, text in changed.items():
            _replace(path, text)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return list(changed)


def _original(doc: InventoryDocument, path: Path) -> str:
    return doc.original if path == doc.path else doc.vars_files[path].original


def _replace(path: Path, text: str) -> None:
    """Write TEXT over PATH atomically, keeping its mode."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def camera_fields(
    camera: dict[str, Any], vault_password_file: str | None
) -> list[tuple[str, str | None, str | None]]:
    """(key, rendered value, vault ciphertext) per key, in the usual key order."""
    keys = [k for k in CAMERA_KEY_ORDER if k in camera] + [
        k for k in camera if k not in CAMERA_KEY_ORDER
    ]
    fields: list[tuple[str, str | None, str | None]] = []
    for key in keys:
        value = camera[key]
        if key in SECRET_KEYS and vault_password_file:
            fields.append((key, None, vault_encrypt(str(value), vault_password_file)))
        else:
            fields.append((key, render_scalar(key, value), None))
    return fields


def add_camera_to(
    doc: InventoryDocument,
    camera: dict[str, Any],
    host: str | None = None,
    vault_password_file: str | None = None,
) -> None:
    """Append CAMERA to the list of HOST (default: the only appliance) in DOC."""
    for key, value in camera.items():
        check_edit(doc.path, key, value)
    target = doc.camera_list(doc.pick_host(host))
    target.doc.append_camera(target, camera_fields(camera, vault_password_file))


def add_camera(
    path: Path,
    camera: dict[str, Any],
    host: str | None = None,
    vault_password_file: str | None = None,
) -> str:
    """Append CAMERA to the list of HOST (default: the only appliance); return the new text."""
    doc = InventoryDocument(path)
    add_camera_to(doc, camera, host, vault_password_file)
    return doc.text


def remove_camera(path: Path, name: str, host: str | None = None) -> str:
    doc = InventoryDocument(path)
    cameras, index = doc.find_camera(name, host)
    cameras.doc.remove_camera(cameras, index)
    return doc.text


def set_camera(
    path: Path,
    name: str,
    changes: dict[str, Any],
    host: str | None = None,
    vault_password_file: str | None = None,
) -> str:
    """Set keys of camera NAME (kept in place; new keys go at the end of its entry)."""
    doc = InventoryDocument(path)
    set_camera_in(doc, name, changes, host, vault_password_file)
    return doc.text


def set_camera_in(
    doc: InventoryDocument,
    name: str,
    changes: dict[str, Any],
    host: str | None = None,
    vault_password_file: str | None = None,
) -> None:
    for key, value in changes.items():
        check_edit(doc.path, key, value)
    for key, value in changes.items():
        cameras, index = doc.find_camera(name, host)
        path, edited = cameras.doc.path, cameras.doc
        item = cameras.seq.value[index]  # type: ignore[union-attr]
        if not isinstance(item, MappingNode):
            raise EditError(f"{path}: camera {name!r} is not a mapping")
        old = _get(item, key)
        old_is_vault = old is not None and old[1].tag == "!vault"
        if key in SECRET_KEYS and (vault_password_file or old_is_vault):
            if not vault_password_file:
                raise EditError(
                    f"{path}: {key} of {name!r} is vault-encrypted; give --vault-password-file "
                    "to write the new value encrypted"
                )
            edited.set_key(item, key, None, vault_encrypt(str(value), vault_password_file))
        else:
            quote = old[1].style if old is not None and isinstance(old[1], ScalarNode) else None
            edited.set_key(
                item, key, render_scalar(key, value, quote if quote in ("'", '"') else None)
            )
        if key == "name":
            name = str(value)
