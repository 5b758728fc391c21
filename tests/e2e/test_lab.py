"""End-to-end tests of the lab itself: the booted Pi, its networks, the wan services, up/down."""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from appliance.lab import phone
from appliance.lab.handle import CLI, Lab
from appliance.lab.image import CACHE_ROOT
from appliance.lab.inventory import build_inventory, write_inventory
from appliance.lab.plan import HOST_ADDR as HOST_LINK_ADDR
from appliance.lab.plan import (
    HOST_LINK,
    PHONE_ADDR,
    ROUTER_PUBLIC,
    WAN_NTP,
    WAN_VPN,
    WIREGUARD_PORT,
    make_plan,
)
from appliance.lab.secrets_store import load_secrets
from appliance.remote import generate_keypair

if TYPE_CHECKING:
    from conftest import LabSession

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]

CAP_NET_ADMIN = 12
CAP_SYS_TIME = 25


def _cap_bounding_set(status: str) -> int:
    return int(re.search(r"^CapBnd:\s*([0-9a-f]+)$", status, re.M).group(1), 16)


@pytest.mark.parametrize("pis", [1, 3, 8])
def test_plan_stays_in_the_lab_range_with_valid_names(pis: int) -> None:
    plan = make_plan(pis=pis, cameras=80)
    lab_net = ipaddress.ip_network("10.203.0.0/19")
    addresses = [HOST_LINK_ADDR, WAN_NTP, WAN_VPN]
    addresses += [p.address for p in plan.pis] + [p.camera_gateway for p in plan.pis]
    addresses += [c.ip for c in plan.cameras]
    assert all(ipaddress.ip_address(a.split("/")[0]) in lab_net for a in addresses)
    assert len({c.mac for c in plan.cameras}) == len(plan.cameras)
    assert all(c.mac.startswith("70:ee:50:") for c in plan.cameras)
    links = [c.pi_port for c in plan.cameras] + [p.lan_port for p in plan.pis]
    assert all(len(name) <= 15 for name in links)  # IFNAMSIZ
    assert all(ns.startswith("pa-") for ns in plan.namespaces)
    for pi in plan.pis:  # reservations below the DHCP range, inside the camera network
        net = ipaddress.ip_network(pi.camera_network["address"], strict=False)
        start = ipaddress.ip_address(pi.camera_network["dhcp_range"][0])
        assert all(net.network_address < ipaddress.ip_address(c.ip) < start for c in pi.cameras)


@pytest.mark.parametrize("pis", [1, 2])
def test_generated_inventory_passes_the_project_validation(pis: int, tmp_path: Path) -> None:
    plan = make_plan(pis=pis, cameras=2)
    secrets = load_secrets(tmp_path, [c.name for c in plan.cameras])
    path = tmp_path / "inventory.yml"
    write_inventory(path, build_inventory(plan, secrets, tmp_path / "ssh" / "id_ed25519"))
    assert path.stat().st_mode & 0o077 == 0
    result = subprocess.run(
        [*CLI, "validate", "-i", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for secret in (secrets["wifi_passphrase"], secrets["web_password"]):
        assert secret not in result.stdout + result.stderr
    yamllint = Path(sys.executable).with_name("yamllint")
    lint = subprocess.run(
        [str(yamllint), "-s", "-c", str(REPO / ".yamllint"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lint.returncode == 0, lint.stdout


def test_pi_boots_under_systemd(lab: Lab) -> None:
    state = lab.pi_exec("systemctl", "is-system-running", check=False).stdout.strip()
    assert state in ("running", "degraded"), state
    assert lab.pi_exec("systemd-detect-virt").stdout.strip() == "systemd-nspawn"
    assert lab.pi_exec("hostname").stdout.strip() == "lab-pi"


def test_pi_has_net_admin_but_never_sys_time(lab: Lab) -> None:
    caps = _cap_bounding_set(lab.pi_exec("cat", "/proc/self/status").stdout)
    assert caps & (1 << CAP_NET_ADMIN)
    assert not caps & (1 << CAP_SYS_TIME)
    # nftables really works inside (what the firewall role needs)
    lab.pi_exec("nft", "list", "ruleset")


def test_ansible_reaches_the_pi_over_ssh_from_the_home_network(lab: Lab) -> None:
    result = lab.ansible("-m", "ansible.builtin.ping")
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"ping": "pong"' in result.stdout
    become = lab.ansible("-b", "-m", "ansible.builtin.command", "-a", "id -u")
    assert become.returncode == 0 and "\n0" in become.stdout, become.stdout


def test_inventory_is_private_and_valid(lab: Lab) -> None:
    for path in (lab.inventory_path, lab.ssh_key, lab.root / "secrets.json"):
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    inv = lab.inventory["all"]["children"]["appliances"]
    host = inv["hosts"]["lab-pi"]
    assert host["ansible_host"] == "10.203.1.2"
    assert Path(host["ansible_ssh_private_key_file"]) == lab.ssh_key
    cams = inv["vars"]["cameras"]
    assert [c["name"] for c in cams] == ["cam1", "cam2"]
    assert all(re.fullmatch(r"[0-9a-f]{32}", c["secure_id"]) for c in cams)
    assert len(inv["vars"]["wifi"]["passphrase"]) == 20
    result = lab.cli("validate", "-i", str(lab.inventory_path), netns=None, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pi_network_layout(lab: Lab) -> None:
    eth0 = lab.run_in("pi", "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
    assert "10.203.1.2/24" in eth0
    route = lab.run_in("pi", "ip", "route", "show", "default").stdout
    assert "via 10.203.1.1 dev eth0" in route
    assert "bridge" in lab.run_in("pi", "ip", "-d", "link", "show", "wlan0").stdout
    for cam in lab.plan.cameras:
        port = lab.run_in("pi", "bridge", "-d", "link", "show", "dev", cam.pi_port).stdout
        assert f"master {cam.bridge}" in port and "isolated on" in port, port
        link = lab.run_in(cam.netns, "ip", "-o", "link", "show", "wlan0").stdout
        assert cam.mac in link


def test_host_reaches_the_pi_through_pa_lan_only(lab: Lab) -> None:
    with socket.create_connection(("10.203.1.2", 22), timeout=5) as conn:
        assert conn.recv(64).startswith(b"SSH-2.0-")
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "dev", HOST_LINK], capture_output=True, text=True, check=True
    ).stdout
    assert "10.203.1.0/24 via 10.203.0.2" in routes
    assert "default" not in routes


def test_wan_ntp_server_serves_and_can_be_stopped(lab: Lab) -> None:
    def query() -> subprocess.CompletedProcess[str]:
        return lab.run_in(
            "lan",
            "chronyd",
            "-Q",
            "-t",
            "4",
            "-u",
            "root",
            "-f",
            "/dev/null",
            f"server {WAN_NTP} iburst maxsamples 1",
            check=False,
            timeout=20,
        )

    before = lab.counters()["by_destination"].get(f"{WAN_NTP}/udp/123", 0)
    assert "System clock wrong by" in query().stderr
    assert lab.counters()["by_destination"][f"{WAN_NTP}/udp/123"] > before
    lab.wan_ntp_stop()
    try:
        assert "System clock wrong by" not in query().stderr
    finally:
        lab.wan_ntp_start()
    assert "System clock wrong by" in query().stderr


def test_vpn_stand_in_and_sink_count_packets(lab: Lab) -> None:
    before = lab.counters()
    script = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        f"s.sendto(b'x', ('{WAN_VPN}', 4500)); s.sendto(b'x', ('{WAN_VPN}', 500)); "
        "s.sendto(b'x', ('10.203.9.9', 5353))"
    )
    lab.run_in("lan", "python3", "-c", script)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        after = lab.counters()
        if after["vpn"].get(500, 0) > before["vpn"].get(500, 0):
            break
        time.sleep(0.2)
    assert after["vpn"][4500] == before["vpn"].get(4500, 0) + 1
    assert after["vpn"][500] == before["vpn"].get(500, 0) + 1
    sink = after["by_destination"]
    assert sink["10.203.9.9/udp/5353"] == before["by_destination"].get("10.203.9.9/udp/5353", 0) + 1


def test_hostapd_stand_in_rejects_a_broken_config(lab: Lab) -> None:
    good = (
        "interface=wlan0\ndriver=nl80211\nssid=lab\nchannel=6\nhw_mode=g\nwpa=2\n"
        "wpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nwpa_passphrase=abcdefghij\n"
    )
    bad = good.replace("abcdefghij", "short")
    for name, text in (("good", good), ("bad", bad)):
        lab.pi_exec("sh", "-c", f"printf '%s' '{text}' > /run/lab-test-{name}.conf")
    ok = lab.pi_exec(
        "/usr/local/sbin/lab-hostapd-stand-in", "check", "/run/lab-test-good.conf", check=False
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = lab.pi_exec(
        "/usr/local/sbin/lab-hostapd-stand-in", "check", "/run/lab-test-bad.conf", check=False
    )
    assert broken.returncode != 0
    assert "invalid WPA passphrase length" in broken.stdout + broken.stderr
    lab.pi_exec("rm", "-f", "/run/lab-test-good.conf", "/run/lab-test-bad.conf")


def test_chrony_in_the_pi_may_start_without_cap_sys_time(lab: Lab) -> None:
    dropin = lab.pi_exec("systemctl", "cat", "chrony").stdout
    assert "ConditionCapability=\n" in dropin and "chronyd $DAEMON_OPTS -x" in dropin


def test_cli_info_and_status(lab: Lab, lab_session: LabSession) -> None:
    status = lab_session.command("status", timeout=60)
    assert status.returncode == 0 and "lab: up" in status.stdout
    assert "lab-pi: running" in status.stdout or "lab-pi: degraded" in status.stdout
    info = lab_session.command("info", timeout=60)
    assert "https://10.203.1.2/" in info.stdout
    web = lab.inventory["all"]["children"]["appliances"]["vars"]["web"]["users"][0]
    assert f"{web['name']} / {web['password']}" in info.stdout
    shell = lab_session.command(
        "shell", "cam-cam1", "--", "ip", "-o", "link", "show", "wlan0", timeout=30
    )
    assert lab.plan.camera("cam1").mac in shell.stdout
    phone_shell = lab_session.command("shell", "phone", "--", "ip", "-o", "-4", "addr", timeout=30)
    assert PHONE_ADDR in phone_shell.stdout  # the phone, out on the internet side


# --- lifecycle: these take the shared lab down and up themselves (run last) --------------


def _lab_traces(lab_dir: Path) -> list[str]:
    """Everything of a lab that could be left on the machine, described (empty = clean)."""
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith("pa-")]
    if subprocess.run(["ip", "link", "show", HOST_LINK], capture_output=True).returncode == 0:
        found.append(f"link {HOST_LINK}")
    if phone.SOCKET.exists():
        found.append(f"socket {phone.SOCKET}")
    if (lab_dir / "phone").exists():  # where the phone's config passes (it holds a key)
        found.append(f"directory {lab_dir / 'phone'}")
    for line in Path("/proc/mounts").read_text().splitlines():
        if str(CACHE_ROOT) in line or str(lab_dir) in line:
            found.append(f"mount {line.split()[1]}")
    markers = (str(lab_dir), "/run/netns/pa-", "appliance.lab.")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(m in cmdline for m in markers):
            found.append(f"process {proc.name}: {cmdline[:80]}")
    return found


def _netns_inodes() -> set[int]:
    return {p.stat().st_ino for p in Path("/run/netns").glob("pa-*")}


def _processes_in(inodes: set[int]) -> list[str]:
    """Processes still inside one of the (deleted) lab namespaces."""
    left = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.stat(proc / "ns" / "net").st_ino in inodes:
                    left.append(proc.name)
            except OSError:
                continue
    return left


@pytest.mark.lab_lifecycle
def test_down_leaves_nothing_behind(lab_session: LabSession) -> None:
    lab = lab_session.ensure_up()
    # The phone's tunnel up too (wireguard-go, its socket): `lab down` ends it as well.
    (private, _), (_, pi_public) = generate_keypair(), generate_keypair()
    lab.phone_tunnel_up(
        f"[Interface]\nPrivateKey = {private}\nAddress = 10.203.8.2/32\n\n[Peer]\n"
        f"PublicKey = {pi_public}\nEndpoint = {ROUTER_PUBLIC}:{WIREGUARD_PORT}\n"
        "AllowedIPs = 10.203.8.1/32\n"
    )
    assert phone.SOCKET.is_socket()
    inodes = _netns_inodes()
    assert inodes, "the lab has no namespaces while up"
    seconds = lab_session.ensure_down()
    print(f"\n[lab] down in {seconds:.1f} s")
    assert _lab_traces(lab_session.root) == []
    assert _processes_in(inodes) == []
    again = lab_session.command("down", timeout=60)
    assert again.returncode == 0 and "nothing to remove" in again.stdout


LAB_NET = ipaddress.ip_network("10.203.0.0/19")
# Host-wide switches a lab could flip (the lab's own sysctls live in its namespaces).
HOST_SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.default.forwarding",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.all.proxy_arp",
    "net.ipv6.conf.all.forwarding",
    "net.netfilter.nf_log_all_netns",
    "net.bridge.bridge-nf-call-iptables",
)


def _mentions_the_lab(line: str) -> bool:
    """A route/address/link line naming a lab interface or an address in the lab's /19
    (other people's namespace tests on a shared machine use other names and ranges)."""
    if " pa-" in line or line.startswith("pa-"):
        return True
    for word in line.replace("/", " ").split():
        try:
            if ipaddress.ip_address(word) in LAB_NET:
                return True
        except ValueError:
            continue
    return False


def _host_network() -> dict[str, list[str]]:
    """What `lab up` could change on the host itself: routes, addresses, links, nftables
    ruleset, forwarding/logging sysctls."""

    def out(*cmd: str) -> list[str]:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        return [line.strip() for line in result.stdout.splitlines() if line.strip()]

    sysctls = [
        line
        for name in HOST_SYSCTLS
        for line in out("sysctl", "-e", name)  # -e: a switch this kernel lacks is skipped
    ]
    return {
        "routes": [
            line
            for line in out("ip", "-4", "route", "show", "table", "all")
            if _mentions_the_lab(line)
        ],
        "addresses": [line for line in out("ip", "-o", "addr") if _mentions_the_lab(line)],
        "links": [
            line for line in out("ip", "-o", "link") if _mentions_the_lab(line.split(":")[1])
        ],
        "nft": out("nft", "list", "ruleset"),
        "sysctl": sysctls,
    }


@pytest.mark.lab_lifecycle
def test_down_restores_the_hosts_routes_rules_and_sysctls(lab_session: LabSession) -> None:
    lab_session.ensure_down()
    before = _host_network()
    lab_session.ensure_up()
    during = _host_network()
    # The lab does change the host (its link and the route to the home network): proof
    # that this snapshot sees what `lab up` sets, so the comparison below can fail.
    assert during["routes"] != before["routes"] and during["links"] != before["links"], during
    lab_session.ensure_down()
    assert _host_network() == before


@pytest.mark.lab_lifecycle
def test_warm_up_reuses_the_cached_image(lab_session: LabSession) -> None:
    """What makes a warm `lab up` quick, asserted without a stopwatch: the cached image is
    used, nothing is built (the README's figures come from `lab up`'s own timing line)."""
    lab_session.ensure_up()  # the image exists from here on
    lab_session.ensure_down()
    up = lab_session.command("up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert re.search(r"^\s*image \S+: cached$", up.stdout, re.M), up.stdout
    assert "debootstrap" not in up.stdout and "built in" not in up.stdout, up.stdout
    print(f"\n[lab] {up.stdout.strip().splitlines()[-1]}")
    again = lab_session.command("up", timeout=60)
    assert again.returncode == 0 and "already up" in again.stdout


@pytest.mark.lab_lifecycle
@pytest.mark.parametrize("kill_after", ["network:", "booting", "booted"])
def test_down_after_a_killed_up_leaves_nothing(lab_session: LabSession, kill_after: str) -> None:
    lab_session.ensure_down()
    env = lab_session.env()
    up = subprocess.Popen(
        [*CLI, "lab", "up"], stdout=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL
    )
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            assert line, f"lab up ended before printing {kill_after!r}"
            if kill_after in line:
                break
        up.send_signal(signal.SIGKILL)
    finally:
        up.kill()
        up.wait(10)
        up.stdout.close()
    inodes = _netns_inodes()
    lab_session.ensure_down()
    assert _lab_traces(lab_session.root) == []
    assert _processes_in(inodes) == []
    # and the next `up` works
    lab_session.ensure_up()
    assert lab_session.handle.pi_exec("true").returncode == 0


@pytest.mark.lab_lifecycle
def test_two_pis_each_with_their_own_camera_network(lab_session: LabSession) -> None:
    lab = lab_session.ensure_up(pis=2, cameras=1)
    hosts = lab.inventory["all"]["children"]["appliances"]["hosts"]
    assert {h: v["ansible_host"] for h, v in hosts.items()} == {
        "lab-pi1": "10.203.1.2",
        "lab-pi2": "10.203.1.3",
    }
    assert hosts["lab-pi2"]["camera_network"]["address"] == "10.203.17.1/24"
    assert [c["ip"] for c in hosts["lab-pi2"]["cameras"]] == ["10.203.17.11"]
    ping = lab.ansible("-m", "ansible.builtin.ping")
    assert ping.stdout.count("SUCCESS") == 2, ping.stdout
    assert lab.pi_exec("hostname", pi="pi2").stdout.strip() == "lab-pi2"
    valid = lab.cli("validate", "-i", str(lab.inventory_path), netns=None, timeout=120)
    assert valid.returncode == 0, valid.stdout + valid.stderr


@pytest.mark.lab_lifecycle
def test_camera_agent_takes_its_reserved_lease_and_serves_the_emulator(
    lab_session: LabSession, tmp_path: Path
) -> None:
    """Before any install: the host's dnsmasq in the Pi's namespace stands in for the dhcp
    role, so this tests the lab's side only (links, MACs, udhcpc agent, lease file)."""
    lab_session.ensure_down()
    lab = lab_session.ensure_up()
    cams = lab.inventory["all"]["children"]["appliances"]["vars"]["cameras"]
    conf = tmp_path / "dnsmasq.conf"
    conf.write_text(
        "interface=wlan0\nbind-interfaces\nport=0\n"
        "dhcp-range=10.203.16.100,10.203.16.199,2m\n"
        "dhcp-option=option:ntp-server,10.203.16.1\n"
        f"dhcp-leasefile={tmp_path / 'leases'}\npid-file={tmp_path / 'pid'}\n"
        + "".join(f"dhcp-host={c['mac']},{c['ip']}\n" for c in cams)
    )
    lab.run_in("pi", "ip", "addr", "add", "10.203.16.1/24", "dev", "wlan0")
    dnsmasq = subprocess.Popen(
        ["ip", "netns", "exec", "pa-pi", "dnsmasq", "--keep-in-foreground", f"--conf-file={conf}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for cam in cams:
            lease = lab.wait_camera_lease(cam["name"], timeout=60)
            assert lease["ip"] == cam["ip"]
            assert lease["router"] == "10.203.16.1"
            assert lease["ntpsrv"] == ["10.203.16.1"]
        # the emulator answers on the leased address with the inventory's secure id
        cam = cams[0]
        url = f"http://{cam['ip']}/{cam['secure_id']}/command/ping"
        deadline = time.monotonic() + 30
        body = ""
        while time.monotonic() < deadline and '"local_url"' not in body:
            fetch = (
                f"import urllib.request as u; print(u.urlopen({url!r}, timeout=3).read().decode())"
            )
            body = lab.run_in("pi", "python3", "-c", fetch, check=False).stdout
            time.sleep(0.5)
        assert '"local_url"' in body and cam["ip"] in body
        # ap_isolate stand-in: one camera cannot reach another
        other = lab.run_in("cam-cam1", "ping", "-c", "1", "-W", "1", cams[1]["ip"], check=False)
        assert other.returncode != 0
        assert lab.run_in("cam-cam1", "ping", "-c", "1", "-W", "2", "10.203.16.1").returncode == 0
    finally:
        dnsmasq.terminate()
        dnsmasq.wait(10)
        lab_session.ensure_down()
