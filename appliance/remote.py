"""Remote viewing peers (WireGuard): key pairs, peer configs, QR codes, the Pi's peer status.

Plain functions that return data; `appliance.cli.remote_cmd` prints and exits. A peer's
private key exists only in the config handed to the user (QR code or --conf file): it is
never written to the inventory, the controller's state or a log.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.nodes import SequenceNode

from appliance import pi_shell
from appliance.check import controller_dir
from appliance.inventory_edit import (
    EditError,
    InventoryDocument,
    render_scalar,
    save_document,
)
from appliance.pi_text import human_bytes

PEERS_PATH = ("remote_access", "wireguard", "peers")
DEFAULT_PORT = 51820
INTERFACE = "wg0"  # the wireguard role's default wireguard_interface
SSH_TIMEOUT = 20.0


class RemoteError(Exception):
    """A remote-access step failed; one line naming the place."""


@dataclass(frozen=True)
class WireGuard:
    """An appliance's remote_access.wireguard, with the defaults filled in."""

    listen_port: int
    subnet: ipaddress.IPv4Network
    endpoint: str
    peers: list[dict[str, Any]]

    @property
    def pi_address(self) -> ipaddress.IPv4Address:
        return next(self.subnet.hosts())


@dataclass(frozen=True)
class PeerStatus:
    """One peer as the Pi's interface sees it (`wg show INTERFACE dump`)."""

    public_key: str
    endpoint: str  # "" until the peer has been heard from
    allowed_ips: str
    latest_handshake: int  # unix time; 0 = never
    rx_bytes: int
    tx_bytes: int


def wireguard_settings(host: str, appliance_vars: dict[str, Any]) -> WireGuard:
    """The (validated) WireGuard settings of one appliance; RemoteError when it has none."""
    remote = appliance_vars.get("remote_access") or {}
    wg = remote.get("wireguard") if isinstance(remote, dict) else None
    if not isinstance(wg, dict):
        raise RemoteError(
            f"{host}: remote_access.wireguard is not set: add listen_port, subnet and endpoint "
            "(see README, Remote viewing), then run `presence-appliance install`"
        )
    return WireGuard(
        listen_port=int(wg.get("listen_port") or DEFAULT_PORT),
        subnet=ipaddress.IPv4Network(str(wg["subnet"])),
        endpoint=str(wg["endpoint"]),
        peers=[p for p in wg.get("peers") or [] if isinstance(p, dict)],
    )


# ---------------------------------------------------------------------------
# Keys and configs


def generate_keypair() -> tuple[str, str]:
    """A new WireGuard (X25519) key pair as base64: (private, public)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    key = X25519PrivateKey.generate()
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()


def next_peer_address(wg: WireGuard) -> str:
    """The lowest tunnel address that is neither the Pi's nor a peer's."""
    used = {str(wg.pi_address)} | {str(p.get("address")) for p in wg.peers}
    for address in wg.subnet.hosts():
        if str(address) not in used:
            return str(address)
    raise RemoteError(f"no free address left in the tunnel subnet {wg.subnet}")


def peer_config(private_key: str, address: str, server_public_key: str, wg: WireGuard) -> str:
    """The peer's wg-quick config: only the Pi's tunnel address goes through the tunnel."""
    return (
        "[Interface]\n"
        f"PrivateKey = {private_key}\n"
        f"Address = {address}/32\n"
        "\n"
        "[Peer]\n"
        f"PublicKey = {server_public_key}\n"
        f"Endpoint = {wg.endpoint}\n"
        f"AllowedIPs = {wg.pi_address}/32\n"
    )


def parse_config(text: str) -> list[tuple[str, dict[str, str]]]:
    """A wg-quick config as [(section, {key: value})], in order (for checks and tests)."""
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append((line[1:-1], {}))
        elif "=" in line and sections:
            key, _, value = line.partition("=")
            sections[-1][1][key.strip()] = value.strip()
    return sections


def pi_public_key_path(inventory: Any, host: str, appliance_vars: dict[str, Any]) -> Path:
    """Where the wireguard role copies the Pi's public key on the controller."""
    return controller_dir(inventory, appliance_vars) / "wireguard" / f"{host}.pub"


def read_pi_public_key(path: Path) -> str:
    try:
        key = path.read_text().strip()
    except OSError:
        raise RemoteError(
            f"{path}: the Pi's public key is not here (run `presence-appliance install` first)"
        ) from None
    if len(key) != 44 or not key.endswith("="):
        raise RemoteError(f"{path}: not a WireGuard public key")
    return key


# ---------------------------------------------------------------------------
# The QR code


def terminal_qr(text: str) -> str:
    """TEXT as a QR code of half-block characters, colours fixed (white on black), so it
    scans on dark and light terminals alike: two module rows per line of text."""
    import segno

    code = segno.make(text, error="l", micro=False)
    rows = [list(row) for row in code.matrix_iter(scale=1, border=2)]
    if len(rows) % 2:
        rows.append([0] * len(rows[0]))
    # (top dark?, bottom dark?) -> glyph drawn in white (light) on black (dark).
    glyphs = {(0, 0): "\u2588", (0, 1): "\u2580", (1, 0): "\u2584", (1, 1): " "}
    lines = []
    for top, bottom in zip(rows[0::2], rows[1::2], strict=True):
        body = "".join(glyphs[(int(a), int(b))] for a, b in zip(top, bottom, strict=True))
        lines.append(f"\x1b[97;40m{body}\x1b[0m")
    return "\n".join(lines) + "\n"


def qr_modules(printed: str) -> list[list[int]]:
    """Read back what terminal_qr printed as rows of modules (1 = dark)."""
    tops = {"\u2588": (0, 0), "\u2580": (0, 1), "\u2584": (1, 0), " ": (1, 1)}
    rows: list[list[int]] = []
    for line in printed.splitlines():
        body = line.replace("\x1b[97;40m", "").replace("\x1b[0m", "")
        if not body or any(ch not in tops for ch in body):
            continue
        rows.append([tops[ch][0] for ch in body])
        rows.append([tops[ch][1] for ch in body])
    return rows


# ---------------------------------------------------------------------------
# The inventory


def add_peer(
    inventory_path: Path,
    host: str,
    peer: dict[str, str],
    vault_password_file: str | None = None,
) -> dict[Path, str]:
    """Append PEER ({name, public_key, address}) to HOST's remote_access.wireguard.peers,
    byte for byte elsewhere; validated before the file is replaced. Returns the files it
    changed with their former text (for `restore`)."""
    doc = InventoryDocument(inventory_path)
    target = doc.list_at(doc.pick_host(host), PEERS_PATH)
    before = {target.doc.path: target.doc.text}
    fields = [(k, render_scalar(k, peer[k]), None) for k in ("name", "public_key", "address")]
    target.doc.append_camera(target, fields)
    written = save_document(doc, vault_password_file, _expect_peer(host, peer["name"], True))
    return {path: before[path] for path in written if path in before}


def restore(files: dict[Path, str]) -> None:
    """Put back the text add_peer replaced (atomically, keeping each file's mode)."""
    for path, text in files.items():
        tmp = path.with_name(f".{path.name}.restore")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, path.stat().st_mode & 0o7777)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)


def remove_peer(
    inventory_path: Path, host: str, name: str, vault_password_file: str | None = None
) -> None:
    """Remove peer NAME from HOST's remote_access.wireguard.peers."""
    doc = InventoryDocument(inventory_path)
    target = doc.list_at(doc.pick_host(host), PEERS_PATH)
    index = next((i for i, item in enumerate(_items(target.seq)) if _name_of(item) == name), None)
    if index is None:
        names = ", ".join(n for n in (_name_of(i) for i in _items(target.seq)) if n) or "none"
        raise EditError(f"{target.doc.path}: no peer {name!r} (peers: {names})")
    target.doc.remove_camera(target, index)
    save_document(doc, vault_password_file, _expect_peer(host, name, False))


def _items(seq: Any) -> list[Any]:
    return list(seq.value) if isinstance(seq, SequenceNode) else []


def _name_of(item: Any) -> str | None:
    for key, value in getattr(item, "value", []) or []:
        if getattr(key, "value", None) == "name":
            return str(value.value)
    return None


def _expect_peer(host: str, name: str, present: bool) -> Any:
    def check(inventory: Any) -> str | None:
        appliance = inventory.appliance(host)
        remote = appliance.vars.get("remote_access") or {}
        peers = (remote.get("wireguard") or {}).get("peers") or []
        there = any(isinstance(p, dict) and p.get("name") == name for p in peers)
        if there != present:
            return (
                f"{host}: the edit does not show in the peers Ansible sees "
                "(another vars file overrides remote_access?): edit it by hand"
            )
        return None

    return check


# ---------------------------------------------------------------------------
# The Pi's live state


def parse_dump(text: str) -> list[PeerStatus]:
    """`wg show IF dump`: the first line is the interface, then one tab-separated line per
    peer: public-key, preshared-key, endpoint, allowed-ips, latest-handshake, rx, tx, keepalive."""
    return parse_peer_lines("\n".join(text.splitlines()[1:]))


def parse_peer_lines(text: str) -> list[PeerStatus]:
    """The peer lines of `wg show IF dump` (its interface line already dropped, as doctor's
    probe drops it on the Pi: that line holds the Pi's private key)."""
    peers = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < 8:
            continue
        try:
            handshake, rx, tx = int(fields[4]), int(fields[5]), int(fields[6])
        except ValueError:
            continue
        endpoint = "" if fields[2] == "(none)" else fields[2]
        peers.append(PeerStatus(fields[0], endpoint, fields[3], handshake, rx, tx))
    return peers


def read_status(
    host: str, appliance_vars: dict[str, Any], interface: str = INTERFACE
) -> list[PeerStatus]:
    """The Pi's peers as its interface sees them, over SSH as Ansible connects."""
    remote = ["wg", "show", interface, "dump"]
    user = appliance_vars.get("ansible_user") or appliance_vars.get("ansible_ssh_user")
    if user not in (None, "root"):
        remote = ["sudo", "-n", *remote]  # wg needs root to read the interface
    what = f"`wg show {interface} dump`"
    try:
        text = pi_shell.output(host, appliance_vars, remote, SSH_TIMEOUT, what=what)
    except pi_shell.PiShellError as err:
        raise RemoteError(str(err)) from None
    # The first line is the interface's own, with its private key: drop it right here.
    return parse_dump(text)


def describe_age(handshake: int, now: float | None = None) -> str:
    if handshake == 0:
        return "never"
    seconds = max(0, int((now if now is not None else time.time()) - handshake))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def iter_rows(
    wg: WireGuard, status: list[PeerStatus], now: float | None = None
) -> Iterator[dict[str, str]]:
    """One row per inventory peer, with its live status (peers unknown to the Pi: not applied)."""
    live = {s.public_key: s for s in status}
    for peer in wg.peers:
        state = live.get(str(peer.get("public_key")))
        yield {
            "name": str(peer.get("name")),
            "address": str(peer.get("address")),
            "handshake": describe_age(state.latest_handshake, now) if state else "not on the Pi",
            "received": human_bytes(state.rx_bytes) if state else "-",
            "sent": human_bytes(state.tx_bytes) if state else "-",
            "endpoint": (state.endpoint or "-") if state else "-",
        }
