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
ENDPOINT = f"{topo.ROUTER_PUBLIC}:{topo.WIREGUARD_PORT}"
SERVICES = ("nginx", "dnsmasq", "chrony", "hostapd")


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

    def phone_get(self, path: str, max_time: int = 15) -> tuple[int, bytes]:
        """HTTPS GET from the phone, to the dashboard's name at the Pi's tunnel address."""
        server = self.lab.inventory["all"]["children"]["appliances"]["vars"]["web"]["server_name"]
        argv = [
            "curl", "-s", "-m", str(max_time), "-o", "-", "-w", "\n%{http_code}",
            "--cacert", str(self.cert), "-u", f"admin:{self.password}",
            "--resolve", f"{server}:443:{PI_TUNNEL}", f"https://{server}{path}",
        ]  # fmt: skip
        result = subprocess.run(
            ["ip", "netns", "exec", topo.PHONE_NS, *argv],
            capture_output=True,
            timeout=max_time + 10,
            check=False,
        )
        body, _, code = result.stdout.rpartition(b"\n")
        return int(code or 0), body


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
    peers = yaml.safe_load(remote.inventory.read_text())["all"]["children"]["appliances"]["vars"][
        "remote_access"
    ]["wireguard"]["peers"]
    assert [p["name"] for p in peers] == ["phone"]
    derived = subprocess.run(
        ["wg", "pubkey"], input=private, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
    assert peers[0]["public_key"] == derived
    assert private not in remote.add_output.replace("\n", "")  # only inside the QR code
    for path in remote.workdir.rglob("*"):
        if path.is_file():
            assert private.encode() not in path.read_bytes(), f"the private key is in {path}"
    live = remote.lab.pi_exec("wg", "show", "wg0", "peers").stdout.split()
    assert live == [derived]


def test_phone_logs_in_and_plays_a_live_stream_through_the_tunnel(remote: Remote) -> None:
    lab = remote.lab
    lab.phone_tunnel_up(remote.phone_config)
    status, body = remote.phone_get("/")
    assert status == 200 and b"<html" in body.lower()
    camera = lab.plan.cameras[0].name
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


def _connects(lab: Lab, host: str, port: int) -> bool:
    """A TCP connection from the phone to HOST:PORT (4 s at most)."""
    probe = (
        "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=4)"
    )
    result = lab.run_in(topo.PHONE_NS, sys.executable, "-c", probe, host, str(port), check=False)
    return result.returncode == 0


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
    for host, port, counter in (
        (PI_TUNNEL, 22, "remote_drop_pi"),  # SSH (firewall.admin_sources does not name the tunnel)
        (pi.address, 22, "remote_drop_pi"),  # the Pi's home address, through the tunnel
        (camera.ip, 80, "remote_drop_forward"),  # a camera's own API
        (topo.LAN_GATEWAY, 80, "remote_drop_forward"),  # the home network
    ):
        before = _counter(lab, counter)
        assert not _connects(lab, host, port), f"the phone reached {host}:{port}"
        assert _counter(lab, counter) > before, f"{counter} did not count {host}:{port}"


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
    refused = remote.cli("remote", "add", "laptop2", "--conf", str(conf))
    assert refused.returncode == 2 and "exists" in refused.stderr
    removed = remote.cli("remote", "remove", "laptop")
    assert removed.returncode == 0, removed.stdout + removed.stderr


def test_remove_revokes_the_phone_at_once(remote: Remote) -> None:
    lab = remote.lab
    lab.phone_tunnel_up(remote.phone_config)
    assert remote.phone_get("/")[0] == 200
    before = _invocations(lab)
    removed = remote.cli("remote", "remove", "phone")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert _invocations(lab) == before
    assert lab.pi_exec("wg", "show", "wg0", "peers").stdout.split() == []
    # A fresh start of the phone's tunnel must shake hands anew: the Pi no longer answers.
    lab.phone_tunnel_up(remote.phone_config)
    assert remote.phone_get("/", max_time=8)[0] == 0
    assert lab.phone_handshake() == 0
