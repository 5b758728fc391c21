"""Remote viewing on the lab: a phone out on the internet (pa-phone) gets in through WireGuard.

The home router (pa-lan) forwards the UDP port to the Pi as a user's router would. `remote
add` shows the phone's config as a QR code; the phone brings its tunnel up from exactly what
that QR code decodes to, logs in to the dashboard and plays a live stream through it; `remote
remove` shuts it out. On the Pi, wg-quick runs the role's config with wireguard-go standing in
for the kernel module (the lab's kernel has none).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from appliance import remote as ra
from appliance.lab import phone
from appliance.lab import plan as topo
from appliance.lab.handle import Lab
from tests.e2e.conftest import LabSession
from tests.qr import decode_terminal
from tests.web.hlsjs import fetch_hlsjs

pytestmark = pytest.mark.lab

PI_TUNNEL = "10.203.8.1"
PHONE_TUNNEL = "10.203.8.2"  # the first peer's address (`remote add` takes the lowest free)
ENDPOINT = f"{topo.ROUTER_PUBLIC}:{topo.WIREGUARD_PORT}"
# Every service of the other roles that the lab Pi runs (recordings is off here).
SERVICES = (
    "nginx", "fail2ban", "dnsmasq", "chrony", "hostapd", "presence-firewall", "ulogd2",
    "systemd-networkd",
)  # fmt: skip


@dataclass
class Remote:
    lab: Lab
    inventory: Path
    workdir: Path
    phone_config: str  # what the QR code of `remote add phone` decodes to
    add_output: str
    invocations_before: dict[str, str]
    invocations_after: dict[str, str]

    @property
    def cert(self) -> Path:
        return self.workdir / ".presence-appliance" / "tls" / "lab-pi.crt"

    @property
    def password(self) -> str:
        users = self.lab.inventory["all"]["children"]["appliances"]["vars"]["web"]["users"]
        return str(users[0]["password"])

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.lab.cli(*args, "-i", str(self.inventory))

    def phone_get(self, path: str, max_time: int = 15, login: bool = True) -> tuple[int, bytes]:
        """HTTPS GET from the phone, to the dashboard's name at the Pi's tunnel address."""
        server = self.lab.inventory["all"]["children"]["appliances"]["vars"]["web"]["server_name"]
        argv = [
            "curl", "-s", "-m", str(max_time), "-o", "-", "-w", "\n%{http_code}",
            "--cacert", str(self.cert), "--resolve", f"{server}:443:{PI_TUNNEL}",
            *(["-u", f"admin:{self.password}"] if login else []), f"https://{server}{path}",
        ]  # fmt: skip
        result = subprocess.run(
            ["ip", "netns", "exec", topo.PHONE_NS, *argv],
            capture_output=True,
            timeout=max_time + 10,
            check=False,
        )
        body, _, code = result.stdout.rpartition(b"\n")
        return int(code or 0), body


def _peer_keys(remote: Remote) -> dict[str, str]:
    """The inventory's peers: name -> public key."""
    group = yaml.safe_load(remote.inventory.read_text())["all"]["children"]["appliances"]
    peers = group["vars"]["remote_access"]["wireguard"]["peers"] or []
    return {p["name"]: p["public_key"] for p in peers}


def _invocations(lab: Lab) -> dict[str, str]:
    """Each service's systemd InvocationID: it changes whenever the service (re)starts."""
    out = lab.pi_exec(
        "systemctl", "show", "-p", "Id,InvocationID", *(f"{s}.service" for s in SERVICES)
    ).stdout
    ids: dict[str, str] = {}
    for block in out.strip().split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        ids[fields["Id"]] = fields["InvocationID"]
    return ids


@pytest.fixture(scope="module")
def remote(lab_session: LabSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    lab = lab_session.ensure_up()
    workdir = tmp_path_factory.mktemp("remote")
    data = copy.deepcopy(lab.inventory)
    group = data["all"]["children"]["appliances"]["vars"]
    group["remote_access"] = {
        "wireguard": {"subnet": topo.WIREGUARD_TUNNEL, "endpoint": ENDPOINT, "peers": []}
    }
    group.setdefault("web_hlsjs_src", str(fetch_hlsjs()))  # the lab Pi has no way out
    inventory = workdir / "inventory.yml"
    inventory.touch(mode=0o600)  # it holds the lab's secrets
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    installed = lab.cli("install", "-i", str(inventory), "--no-check")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    before = _invocations(lab)
    added = lab.cli("remote", "add", "phone", "-i", str(inventory))
    assert added.returncode == 0, added.stdout + added.stderr
    after = _invocations(lab)
    config = decode_terminal(added.stdout, workdir)
    state = Remote(lab, inventory, workdir, config, added.stdout, before, after)
    try:
        yield state
    finally:
        lab.phone_tunnel_down()


def test_the_pi_runs_the_roles_config_with_the_named_stand_in(remote: Remote) -> None:
    lab = remote.lab
    assert lab.pi_exec("systemctl", "is-active", "wg-quick@wg0").stdout.strip() == "active"
    journal = lab.pi_exec("journalctl", "-u", "wg-quick@wg0", "--no-pager", "-o", "cat").stdout
    assert "lab WireGuard stand-in: no kernel module in the lab; wireguard-go runs wg0" in journal
    # The key was made on the Pi and is root's alone; the config has none.
    mode = lab.pi_exec("stat", "-c", "%a %U", "/etc/wireguard/wg0.key").stdout.split()
    assert mode == ["600", "root"]
    assert "PrivateKey" not in lab.pi_exec("cat", "/etc/wireguard/wg0.conf").stdout
    pi_private = lab.pi_exec("cat", "/etc/wireguard/wg0.key").stdout.strip()
    assert len(pi_private) == 44
    for path in remote.workdir.rglob("*"):
        if path.is_file():
            assert pi_private.encode() not in path.read_bytes(), f"the Pi's key is in {path}"


def test_add_applies_to_the_tunnel_alone_and_keeps_no_private_key(remote: Remote) -> None:
    assert remote.invocations_after == remote.invocations_before, "a service restarted"
    sections = dict(ra.parse_config(remote.phone_config))
    private = sections["Interface"]["PrivateKey"]
    pi_public = (remote.workdir / ".presence-appliance/wireguard/lab-pi.pub").read_text().strip()
    assert sections["Peer"] == {
        "PublicKey": pi_public,
        "Endpoint": ENDPOINT,
        "AllowedIPs": f"{PI_TUNNEL}/32",
    }
    peers = _peer_keys(remote)
    assert list(peers) == ["phone"]
    derived = subprocess.run(
        ["wg", "pubkey"], input=private, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
    assert peers["phone"] == derived
    assert private not in remote.add_output.replace("\n", "")  # only inside the QR code
    for path in remote.workdir.rglob("*"):
        if path.is_file():
            assert private.encode() not in path.read_bytes(), f"the private key is in {path}"
    # Nor on the Pi: read through the container's root from the host, so that no command
    # line on the Pi (which its journal records) carries the key.
    pi_root = Path(f"/proc/{remote.lab.pi_leader()}/root")
    for top in ("etc/wireguard", "var/backups/presence-appliance", "var/log"):
        for path in (pi_root / top).rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert private.encode() not in path.read_bytes(), f"the private key is in {path}"
    journal = remote.lab.pi_exec("journalctl", "-o", "cat", "--no-pager").stdout
    assert private not in journal
    live = remote.lab.pi_exec("wg", "show", "wg0", "peers").stdout.split()
    assert live == [derived]


def test_phone_logs_in_and_plays_a_live_stream_through_the_tunnel(remote: Remote) -> None:
    lab = remote.lab
    lab.phone_tunnel_up(remote.phone_config)
    assert remote.phone_get("/", login=False)[0] == 401  # the dashboard asks for the login
    status, body = remote.phone_get("/")
    assert status == 200 and b"<html" in body.lower()
    # The Pi's nginx knows the phone came through the tunnel: the page saves data (snapshots).
    assert json.loads(remote.phone_get("/client.json")[1]) == {"remote": 1}
    camera = lab.plan.cameras[0].name
    status, snapshot = remote.phone_get(f"/cameras/{camera}/live/snapshot_720.jpg")
    assert status == 200 and snapshot[:2] == b"\xff\xd8", snapshot[:100]
    status, playlist = remote.phone_get(f"/cameras/{camera}/live/files/high/index.m3u8")
    assert status == 200 and playlist.startswith(b"#EXTM3U"), playlist[:200]
    segment = re.findall(rb"^(live\d+\.ts)$", playlist, re.M)[-1].decode()
    status, media = remote.phone_get(f"/cameras/{camera}/live/files/high/{segment}")
    assert status == 200 and media[:1] == b"\x47" and len(media) > 1000
    assert lab.phone_handshake() > 0

    listed = remote.cli("remote", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.strip().startswith("phone"))
    assert " s ago" in row or " min ago" in row, listed.stdout
    assert "KiB" in row or "MiB" in row, listed.stdout  # the stream came through
    assert topo.PHONE_ADDR.split("/")[0] + ":" in row  # where the Pi hears the phone from

    # doctor: the port open on the Pi, what the router forwards, the phone's handshake.
    doctor = remote.cli("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["appliances"][0]["checks"]}
    port, peers = checks["remote:port"], checks["remote:peers"]
    assert port["status"] == "ok", port
    assert f"wg0 listens on UDP {topo.WIREGUARD_PORT}, open on the Pi" in port["message"]
    assert f"forward UDP {topo.WIREGUARD_PORT} to " in port["message"]
    assert peers["status"] == "ok", peers
    assert peers["message"].startswith("phone: handshake ")
    assert f" from {topo.PHONE_ADDR.split('/')[0]}:" in peers["message"]


def _counter(lab: Lab, name: str) -> int:
    out = lab.pi_exec("nft", "-j", "list", "counter", "inet", "presence_appliance", name).stdout
    return next(i["counter"]["packets"] for i in json.loads(out)["nftables"] if "counter" in i)


# Connects to each HOST PORT given, all at once (4 s at most), and prints those that answered.
PROBE = """\
import socket, sys
from concurrent.futures import ThreadPoolExecutor
def reach(target):
    try:
        socket.create_connection(target, timeout=4).close()
        return True
    except OSError:
        return False
targets = [(h, int(p)) for h, p in zip(sys.argv[1::2], sys.argv[2::2])]
with ThreadPoolExecutor(len(targets)) as pool:
    print(*[f"{h}:{p}" for (h, p), ok in zip(targets, pool.map(reach, targets)) if ok])
"""


def _reached(lab: Lab, targets: list[tuple[str, int]]) -> list[str]:
    """Which of TARGETS the phone reaches over TCP (tried side by side, 4 s at most)."""
    argv = [str(part) for target in targets for part in target]
    result = lab.run_in(topo.PHONE_NS, sys.executable, "-c", PROBE, *argv, timeout=30)
    return result.stdout.split()


def test_through_the_tunnel_ssh_the_cameras_and_the_lan_are_out_of_reach(remote: Remote) -> None:
    lab = remote.lab
    lab.phone_tunnel_up(remote.phone_config)
    pi, camera = lab.plan.pis[0], lab.plan.cameras[0]
    # A peer that edits its own config to send the camera network and the LAN into the tunnel.
    pi_public = dict(ra.parse_config(remote.phone_config))["Peer"]["PublicKey"]
    wider = [f"{pi.camera_prefix}.0/24", topo.LAN_NET]
    lab.run_in(
        topo.PHONE_NS, "wg", "set", phone.INTERFACE, "peer", pi_public,
        "allowed-ips", ",".join([f"{PI_TUNNEL}/32", *wider]),
    )  # fmt: skip
    for net in wider:
        lab.run_in(topo.PHONE_NS, "ip", "route", "replace", net, "dev", phone.INTERFACE)
    assert remote.phone_get("/")[0] == 200  # the dashboard still works
    # Two rounds, so that each round's drop counters tell its two targets apart.
    for round_ in (
        [
            (PI_TUNNEL, 22, "remote_drop_pi"),  # SSH (admin_sources does not name the tunnel)
            (camera.ip, 80, "remote_drop_forward"),  # a camera's own API
        ],
        [
            (pi.address, 22, "remote_drop_pi"),  # the Pi's home address, through the tunnel
            (topo.LAN_GATEWAY, 80, "remote_drop_forward"),  # the home network
        ],
    ):
        before = {counter: _counter(lab, counter) for _, _, counter in round_}
        assert _reached(lab, [(host, port) for host, port, _ in round_]) == []
        for host, port, counter in round_:
            assert _counter(lab, counter) > before[counter], f"{counter}: {host}:{port}"

    # `presence-appliance firewall` shows those drops, each attempt with its peer and target
    # (ulogd2 writes the log a moment after the packet: a bounded wait for the four).
    wanted = {
        ("pi", f"{PI_TUNNEL}:22"), ("forward", f"{camera.ip}:80"),
        ("pi", f"{pi.address}:22"), ("forward", f"{topo.LAN_GATEWAY}:80"),
    }  # fmt: skip
    deadline = time.monotonic() + 15
    while True:
        shown = remote.cli("firewall", "--json", "--limit", "50")
        assert shown.returncode == 0, shown.stdout + shown.stderr
        tunnel = json.loads(shown.stdout)["appliances"][0]["tunnel"]
        seen = {(e["kind"], f"{e['destination']}:{e['port']}") for e in tunnel["recent"]}
        if wanted <= seen or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert wanted <= seen, seen
    assert {e["source"] for e in tunnel["recent"]} == {PHONE_TUNNEL}
    assert tunnel["drops"]["pi"] >= 2 and tunnel["drops"]["forward"] >= 2
    table = remote.cli("firewall").stdout
    assert "WireGuard peers, blocked" in table
    assert any(line.split()[:2] == [pi.host, "phone"] for line in table.splitlines()), table


def test_conf_file_holds_the_same_config_as_the_qr_code(remote: Remote) -> None:
    conf = remote.workdir / "laptop.conf"
    added = remote.cli("remote", "add", "laptop", "--conf", str(conf))
    assert added.returncode == 0, added.stdout + added.stderr
    assert conf.stat().st_mode & 0o777 == 0o600
    assert "\u2588" not in added.stdout and "PrivateKey" not in added.stdout
    laptop, phone = (
        dict(ra.parse_config(conf.read_text())),
        dict(ra.parse_config(remote.phone_config)),
    )
    assert laptop["Peer"] == phone["Peer"]
    assert laptop["Interface"]["Address"] != phone["Interface"]["Address"]
    assert laptop["Interface"]["PrivateKey"] != phone["Interface"]["PrivateKey"]
    assert _peer_keys(remote)["laptop"] in remote.lab.pi_exec("wg", "show", "wg0", "peers").stdout
    refused = remote.cli("remote", "add", "laptop2", "--conf", str(conf))
    assert refused.returncode == 2 and "exists" in refused.stderr
    # The laptop stays: `remote remove phone` below must leave it in.


def test_remove_revokes_the_phone_at_once(remote: Remote) -> None:
    lab = remote.lab
    lab.phone_tunnel_up(remote.phone_config)
    assert remote.phone_get("/")[0] == 200
    phone_key = _peer_keys(remote)["phone"]
    live = lab.pi_exec("wg", "show", "wg0", "peers").stdout.split()
    assert phone_key in live
    before = _invocations(lab)
    removed = remote.cli("remote", "remove", "phone")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert _invocations(lab) == before
    # Only the phone goes (the laptop of the --conf test, when it ran, stays in).
    assert "phone" not in _peer_keys(remote)
    after = lab.pi_exec("wg", "show", "wg0", "peers").stdout.split()
    assert sorted(after) == sorted(k for k in live if k != phone_key)
    # A fresh start of the phone's tunnel must shake hands anew: the Pi no longer answers.
    lab.phone_tunnel_up(remote.phone_config)
    assert remote.phone_get("/", max_time=8)[0] == 0
    assert lab.phone_handshake() == 0


def test_switching_remote_access_off_takes_the_tunnel_and_its_rows_away(remote: Remote) -> None:
    """Last in the module: remote_access leaves the inventory; the roles that read it run."""
    lab = remote.lab
    pi = lab.plan.pis[0]
    data = yaml.safe_load(remote.inventory.read_text())
    del data["all"]["children"]["appliances"]["vars"]["remote_access"]
    remote.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    before = _invocations(lab)
    # The three roles that read remote_access: wireguard, the firewall's tunnel rows, and the
    # web role's tunnel address (nginx's listen set) and remote-viewer subnet.
    off = remote.cli("install", "--tags", "wireguard,firewall,web", "--no-check")
    assert off.returncode == 0, off.stdout + off.stderr

    assert lab.pi_exec("ip", "link", "show", "wg0", check=False).returncode != 0
    active = lab.pi_exec("systemctl", "is-active", "wg-quick@wg0", check=False).stdout.strip()
    enabled = lab.pi_exec("systemctl", "is-enabled", "wg-quick@wg0", check=False).stdout.strip()
    assert (active, enabled) == ("inactive", "disabled")
    present = lab.pi_exec(
        "ls", "/etc/wireguard/wg0.conf", "/usr/local/sbin/presence-wg-syncconf",
        "/etc/systemd/system/wg-quick@.service.d/presence-appliance.conf", check=False,
    )  # fmt: skip
    assert present.stdout.strip() == "", present.stdout
    # The Pi's key stays, so that peers' configs are still good when remote access returns.
    assert lab.pi_exec("test", "-s", "/etc/wireguard/wg0.key", check=False).returncode == 0

    table = lab.pi_exec("nft", "list", "table", "inet", "presence_appliance").stdout
    assert "wg0" not in table and "remote_" not in table, table
    assert f"dport {topo.WIREGUARD_PORT}" not in table
    listening = lab.pi_exec("ss", "-Huln", f"sport = :{topo.WIREGUARD_PORT}").stdout
    assert listening.strip() == "", listening
    # From the home network the port is now one of the firewall's drops.
    dropped = _counter(lab, "lan_drop_pi")
    send = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        f"[s.sendto(b'x', ('{pi.address}', {topo.WIREGUARD_PORT})) for _ in range(3)]"
    )
    lab.run_in("lan", sys.executable, "-c", send)
    assert _counter(lab, "lan_drop_pi") >= dropped + 3

    # nginx restarts (its listen set loses the tunnel address); nothing else does.
    after = _invocations(lab)
    restarted = {unit for unit in before if after[unit] != before[unit]}
    assert restarted <= {"nginx.service"}, restarted
    assert lab.pi_exec("systemctl", "is-active", "nginx").stdout.strip() == "active"
