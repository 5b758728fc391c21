"""wireguard role: what it renders, and that rendered config really carries a tunnel.

The namespace test brings the rendered wg0.conf up with the real wg-quick (wireguard-go
stands in for the kernel module this machine lacks), then applies peer changes with the
role's own reload helper: a new peer gets in, the others keep their sessions and the Pi its
key, and a removed peer is shut out at once.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance import remote as ra
from tests.roles.conftest import Netns, render_inventory, run
from tests.wg_userspace import bring_up_peer, stand_in_script, stop_recorded

# This test family's addresses (10.203.240.0/20) and namespace prefix (remt-).
PI_TO_PHONE = ("10.203.240.1", "10.203.240.2")
PI_TO_LAPTOP = ("10.203.240.5", "10.203.240.6")
TUNNEL = "10.203.241.0/24"
PI_TUNNEL = "10.203.241.1"
PORT = 51821


def _inventory(path: Path, interface: str | None, peers: list[dict[str, str]] | None) -> Path:
    variables: dict[str, Any] = yaml.safe_load(
        (Path(__file__).parent / "scenarios" / "ap_isolate.yml").read_text()
    )["all"]["children"]["appliances"]["vars"]
    if peers is not None:
        variables["remote_access"] = {
            "wireguard": {
                "listen_port": PORT,
                "subnet": TUNNEL,
                "endpoint": f"{PI_TO_PHONE[0]}:{PORT}",
                "peers": peers,
            }
        }
    if interface:
        variables["wireguard_interface"] = interface
    doc = {"all": {"children": {"appliances": {"hosts": {"pi": {}}, "vars": variables}}}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _render(tmp: Path, interface: str | None, peers: list[dict[str, str]] | None) -> Path:
    out = tmp / f"out-{uuid.uuid4().hex[:6]}"
    return render_inventory(
        _inventory(tmp / "inventory.yml", interface, peers), out, ("wireguard",)
    )


def test_renders_address_port_and_peers_without_any_private_key(tmp_path: Path) -> None:
    _, key_a = ra.generate_keypair()
    out = _render(
        tmp_path, None, [{"name": "phone", "public_key": key_a, "address": "10.203.241.7"}]
    )
    conf = out / "etc/wireguard/wg0.conf"
    assert conf.stat().st_mode & 0o777 == 0o600
    sections = ra.parse_config(conf.read_text())
    assert sections == [
        (
            "Interface",
            {
                "Address": "10.203.241.1/24",
                "ListenPort": str(PORT),
                "PostUp": "wg set %i private-key /etc/wireguard/wg0.key",
            },
        ),
        ("Peer", {"PublicKey": key_a, "AllowedIPs": "10.203.241.7/32"}),
    ]
    # The real parser: wg-quick insists on <interface>.conf and strips its own keys.
    stripped = run(["wg-quick", "strip", str(conf)]).stdout
    assert "PrivateKey" not in conf.read_text() and "Address" not in stripped
    helper = out / "usr/local/sbin/presence-wg-syncconf"
    run(["bash", "-n", str(helper)])
    dropin = (out / "etc/systemd/system/wg-quick@.service.d/presence-appliance.conf").read_text()
    assert "ExecReload=/usr/local/sbin/presence-wg-syncconf %i" in dropin


def test_nothing_is_rendered_without_remote_access(tmp_path: Path) -> None:
    out = _render(tmp_path, None, None)
    assert not (out / "etc/wireguard").exists()
    assert not (out / "usr/local/sbin/presence-wg-syncconf").exists()


class RemoteNetns(Netns):
    """Netns with this test family's prefix (remt-)."""

    def add(self, role: str) -> str:
        name = f"remt-{role}-{self.tag}"
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        self.exec(name, ["ip", "link", "set", "lo", "up"])
        return name


@pytest.fixture
def remt(tmp_path: Path) -> Iterator[RemoteNetns]:
    if os.geteuid() != 0:
        pytest.fail("namespace tests need root")
    spaces = RemoteNetns()
    try:
        yield spaces
    finally:
        stop_recorded(tmp_path)  # every wireguard-go, by the PID it recorded
        spaces.cleanup()


def _as_pi(etc: Path, netns: str, argv: list[str], env: dict[str, str]) -> str:
    """Run ARGV in the Pi's namespace with ETC as its /etc/wireguard (a private mount)."""
    script = 'mount --bind "$0" /etc/wireguard && exec ip netns exec "$1" "${@:2}"'
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", script, etc, netns, *argv],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )
    assert proc.returncode == 0, f"{argv}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def _dump(netns: str, interface: str) -> tuple[str, dict[str, ra.PeerStatus]]:
    text = run(["ip", "netns", "exec", netns, "wg", "show", interface, "dump"]).stdout
    public = text.splitlines()[0].split("\t")[1]
    return public, {p.public_key: p for p in ra.parse_dump(text)}


def _reaches(netns: str, address: str, attempts: int) -> bool:
    """Ping ADDRESS up to ATTEMPTS times (1 s each): the first handshake takes a moment."""
    for _ in range(attempts):
        ping = ["ip", "netns", "exec", netns, "ping", "-c", "1", "-W", "1", address]
        if run(ping, check=False).returncode == 0:
            return True
    return False


def test_peers_come_and_go_on_the_live_tunnel(remt: RemoteNetns, tmp_path: Path) -> None:
    tag = remt.tag
    pi_if, phone_if, laptop_if = f"remt{tag}", f"remtp{tag}", f"remtl{tag}"
    pi, phone, laptop = remt.add("pi"), remt.add("phone"), remt.add("laptop")
    remt.veth(pi, "tophone", phone, "eth0")
    remt.veth(pi, "tolaptop", laptop, "eth0")
    run(["ip", "-n", pi, "addr", "add", f"{PI_TO_PHONE[0]}/30", "dev", "tophone"])
    run(["ip", "-n", phone, "addr", "add", f"{PI_TO_PHONE[1]}/30", "dev", "eth0"])
    run(["ip", "-n", pi, "addr", "add", f"{PI_TO_LAPTOP[0]}/30", "dev", "tolaptop"])
    run(["ip", "-n", laptop, "addr", "add", f"{PI_TO_LAPTOP[1]}/30", "dev", "eth0"])

    phone_key, phone_pub = ra.generate_keypair()
    laptop_key, laptop_pub = ra.generate_keypair()
    phone_peer = {"name": "phone", "public_key": phone_pub, "address": "10.203.241.2"}
    laptop_peer = {"name": "laptop", "public_key": laptop_pub, "address": "10.203.241.3"}

    # The Pi, as the role leaves it: its key made locally (root-only), the rendered config.
    etc = tmp_path / "etc-wireguard"
    etc.mkdir(mode=0o700)
    key_file = etc / f"{pi_if}.key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(run(["wg", "genkey"]).stdout)
    pi_pub = subprocess.run(
        ["wg", "pubkey"], stdin=key_file.open(), capture_output=True, text=True, timeout=10
    ).stdout.strip()

    def install(peers: list[dict[str, str]]) -> None:
        out = _render(tmp_path, pi_if, peers)
        (etc / f"{pi_if}.conf").write_bytes((out / f"etc/wireguard/{pi_if}.conf").read_bytes())
        (etc / f"{pi_if}.conf").chmod(0o600)
        helper = tmp_path / "presence-wg-syncconf"
        helper.write_bytes((out / "usr/local/sbin/presence-wg-syncconf").read_bytes())
        helper.chmod(0o755)

    env = {"WG_QUICK_USERSPACE_IMPLEMENTATION": str(stand_in_script(tmp_path))}
    install([phone_peer])
    _as_pi(etc, pi, ["wg-quick", "up", pi_if], env)

    wg = ra.wireguard_settings(
        "pi",
        {
            "remote_access": {
                "wireguard": {"subnet": TUNNEL, "endpoint": f"{PI_TO_PHONE[0]}:{PORT}"}
            }
        },
    )
    bring_up_peer(phone, phone_if, ra.peer_config(phone_key, "10.203.241.2", pi_pub, wg), tmp_path)
    assert _reaches(phone, PI_TUNNEL, attempts=10)
    public, peers = _dump(pi, pi_if)
    assert public == pi_pub
    first_handshake = peers[phone_pub].latest_handshake
    assert first_handshake > 0

    # Add the laptop with the role's reload helper (what `systemctl reload wg-quick@` runs).
    install([phone_peer, laptop_peer])
    deadline = time.monotonic() + 5  # let the clock pass the handshake's second
    while time.time() < first_handshake + 1.1 and time.monotonic() < deadline:
        time.sleep(0.1)
    _as_pi(etc, pi, [str(tmp_path / "presence-wg-syncconf"), pi_if], env)
    public, peers = _dump(pi, pi_if)
    assert public == pi_pub, "the reload lost the Pi's private key"
    assert set(peers) == {phone_pub, laptop_pub}
    assert _reaches(phone, PI_TUNNEL, attempts=3)
    assert _dump(pi, pi_if)[1][phone_pub].latest_handshake == first_handshake, (
        "the phone had to shake hands again: its session did not survive the reload"
    )
    laptop_wg = ra.wireguard_settings(
        "pi",
        {
            "remote_access": {
                "wireguard": {"subnet": TUNNEL, "endpoint": f"{PI_TO_LAPTOP[0]}:{PORT}"}
            }
        },
    )
    bring_up_peer(
        laptop, laptop_if, ra.peer_config(laptop_key, "10.203.241.3", pi_pub, laptop_wg), tmp_path
    )
    assert _reaches(laptop, PI_TUNNEL, attempts=10)

    # Revoke the phone: it is shut out at once, the laptop stays in.
    install([laptop_peer])
    _as_pi(etc, pi, [str(tmp_path / "presence-wg-syncconf"), pi_if], env)
    assert set(_dump(pi, pi_if)[1]) == {laptop_pub}
    assert not _reaches(phone, PI_TUNNEL, attempts=3)
    assert _reaches(laptop, PI_TUNNEL, attempts=3)
