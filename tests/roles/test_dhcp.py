"""dhcp role: the rendered dnsmasq config passes `dnsmasq --test` and serves real DHCP/DNS clients."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.roles.conftest import Netns, render_scenario, run

SCENARIOS = ("ap_isolate", "vlan_per_camera", "band5_wpa3")
PI = "10.203.64.1"

# udhcpc calls this on every event; on a lease it configures the address (so the client can
# query DNS and ping) and records udhcpc's variables for the test.
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$subnet" dev "$interface"
    env | sort > "$LEASE_OUT"
    ;;
esac
exit 0
"""


def _conf_lines(out: Path) -> list[str]:
    text = (out / "etc/dnsmasq.d/cameras.conf").read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_dnsmasq_test_accepts_rendered_config(scenario: str, tmp_path: Path) -> None:
    out = render_scenario(scenario, tmp_path, roles=("dhcp",))
    result = run(["dnsmasq", "--test", f"--conf-file={out / 'etc/dnsmasq.d/cameras.conf'}"])
    assert "syntax check OK" in result.stdout + result.stderr


def test_dnsmasq_test_rejects_a_broken_value(tmp_path: Path) -> None:
    out = render_scenario("ap_isolate", tmp_path, roles=("dhcp",))
    conf = out / "etc/dnsmasq.d/cameras.conf"
    text = conf.read_text()
    assert ",255.255.255.0,12h" in text
    conf.write_text(text.replace(",255.255.255.0,12h", ",255.255.255.0,12x"))  # a bad lease time
    result = run(["dnsmasq", "--test", f"--conf-file={conf}"], check=False)
    assert result.returncode != 0
    assert "bad dhcp-range" in result.stdout + result.stderr


def test_serves_only_the_camera_interface_with_reservations_and_options(tmp_path: Path) -> None:
    lines = _conf_lines(render_scenario("ap_isolate", tmp_path, roles=("dhcp",)))
    assert [line for line in lines if line.startswith("interface=")] == ["interface=pan-wl0"]
    assert "except-interface=lo" in lines
    assert "bind-dynamic" in lines
    assert "dhcp-authoritative" in lines
    assert "dhcp-leasefile=/var/lib/misc/dnsmasq.leases" in lines
    assert "dhcp-range=set:cameras,10.203.64.100,10.203.64.200,255.255.255.0,12h" in lines
    assert "dhcp-option=option:ntp-server,10.203.64.1" in lines
    assert "dhcp-option=option:router,10.203.64.1" in lines
    assert "dhcp-option=option:dns-server,10.203.64.1" in lines
    # MACs lower-cased whatever the inventory's spelling.
    assert "dhcp-host=70:ee:50:00:00:01,10.203.64.11,nord,12h" in lines
    assert "dhcp-host=70:ee:50:00:00:02,10.203.64.12,sued,12h" in lines
    assert "host-record=nord,nord.cameras.home.arpa,10.203.64.11" in lines
    default = (tmp_path / "etc/default/dnsmasq").read_text()
    assert 'DNSMASQ_EXCEPT="lo"' in default
    assert "CONFIG_DIR=/etc/dnsmasq.d,.dpkg-dist,.dpkg-old,.dpkg-new" in default


def test_vlan_mode_also_serves_the_camera_vlan_bridges(tmp_path: Path) -> None:
    lines = _conf_lines(render_scenario("vlan_per_camera", tmp_path, roles=("dhcp",)))
    assert [line for line in lines if line.startswith("interface=")] == [
        "interface=pan-wl0",
        "interface=brvlan*",
    ]


def test_wider_subnet_gets_its_netmask(tmp_path: Path) -> None:
    lines = _conf_lines(render_scenario("band5_wpa3", tmp_path, roles=("dhcp",)))
    assert "dhcp-range=set:cameras,10.203.73.0,10.203.73.200,255.255.248.0,12h" in lines


# --- real DHCP and DNS between namespaces ------------------------------------------------


def _start_dnsmasq(netns: Netns, ns: str, out: Path, state: Path) -> None:
    """The rendered config, unchanged, in a private mount namespace where /var/lib/misc
    (the lease file's directory) is a test directory."""
    leases = state / "misc"
    leases.mkdir(parents=True)
    conf = out / "etc/dnsmasq.d/cameras.conf"
    script = (
        f"mount --bind {leases} /var/lib/misc && exec dnsmasq --keep-in-foreground "
        f"--conf-file={conf} --pid-file={state / 'dnsmasq.pid'} --log-facility=- --log-dhcp"
    )
    proc = netns.start(
        ns,
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        state / "dnsmasq.log",
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError((state / "dnsmasq.log").read_text())
        if netns.exec(ns, ["ss", "-Hlun", "sport", "= :67"], check=False).stdout.strip():
            return
        time.sleep(0.1)
    raise AssertionError(
        "dnsmasq did not open its DHCP socket:\n" + (state / "dnsmasq.log").read_text()
    )


def _dhcp(netns: Netns, ns: str, iface: str, tmp_path: Path) -> dict[str, str]:
    script = tmp_path / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o700)
    lease_out = tmp_path / f"lease-{ns}.env"
    netns.exec(
        ns,
        [
            "env",
            f"LEASE_OUT={lease_out}",
            "udhcpc",
            "-i",
            iface,
            "-n",
            "-q",
            "-t",
            "5",
            "-T",
            "1",
            "-O",
            "ntpsrv",
            "-O",
            "domain",
            "-s",
            str(script),
        ],
        timeout=30,
    )
    values = dict(line.split("=", 1) for line in lease_out.read_text().splitlines() if "=" in line)
    return values


def _dns_query(netns: Netns, ns: str, server: str, name: str) -> str:
    """Ask SERVER for NAME's A record from inside NS; return the address or the rcode."""
    code = (
        "import socket,struct,sys\n"
        "q=struct.pack('>HHHHHH',0x1234,0x0100,1,0,0,0)+b''.join(bytes([len(p)])+p.encode() for p in sys.argv[2].split('.'))+b'\\0'+struct.pack('>HH',1,1)\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3);s.sendto(q,(sys.argv[1],53))\n"
        "r=s.recv(512);rcode=r[3]&15;an=struct.unpack('>H',r[6:8])[0]\n"
        "print(socket.inet_ntoa(r[-4:]) if an else 'rcode%d'%rcode)\n"
    )
    return netns.exec(ns, ["python3", "-c", code, server, name], timeout=10).stdout.strip()


def _client(netns: Netns, pi: str, pi_if: str, name: str, mac: str) -> str:
    ns = netns.add(name)
    netns.veth(pi, pi_if, ns, "wlan0")
    netns.exec(ns, ["ip", "link", "set", "wlan0", "address", mac])
    return ns


@pytest.mark.netns
def test_reserved_address_option_42_and_dynamic_range(netns: Netns, tmp_path: Path) -> None:
    out = render_scenario("ap_isolate", tmp_path / "out", roles=("dhcp",))
    pi = netns.add("pi")
    # An L2 switch stands in for the Wi-Fi: the Pi's pan-wl0 is a bridge, one veth per client.
    netns.exec(pi, ["ip", "link", "add", "pan-wl0", "type", "bridge"])
    netns.exec(pi, ["ip", "addr", "add", f"{PI}/24", "dev", "pan-wl0"])
    netns.exec(pi, ["ip", "link", "set", "pan-wl0", "up"])
    nord = _client(netns, pi, "pan-p1", "nord", "70:ee:50:00:00:01")
    stranger = _client(netns, pi, "pan-p2", "new", "02:00:00:00:00:42")
    for port in ("pan-p1", "pan-p2"):
        netns.exec(pi, ["ip", "link", "set", port, "master", "pan-wl0"])
    _start_dnsmasq(netns, pi, out, tmp_path / "state")

    lease = _dhcp(netns, nord, "wlan0", tmp_path)
    assert lease["ip"] == "10.203.64.11"
    assert lease["ntpsrv"] == PI
    assert lease["router"] == PI
    assert lease["dns"] == PI
    assert lease["domain"] == "cameras.home.arpa"

    other = _dhcp(netns, stranger, "wlan0", tmp_path)
    last = int(other["ip"].rsplit(".", 1)[1])
    assert other["ip"].startswith("10.203.64.") and 100 <= last <= 200, other["ip"]

    # Camera names resolve through the Pi's dnsmasq, with and without the domain.
    assert _dns_query(netns, nord, PI, "nord") == "10.203.64.11"
    assert _dns_query(netns, nord, PI, "sued.cameras.home.arpa") == "10.203.64.12"

    # Leases are on disk (the lease file survives restarts).
    leases = (tmp_path / "state/misc/dnsmasq.leases").read_text()
    assert "70:ee:50:00:00:01 10.203.64.11 nord" in leases
    assert "02:00:00:00:00:42" in leases


@pytest.mark.netns
def test_dnsmasq_does_not_listen_beyond_the_camera_interface(netns: Netns, tmp_path: Path) -> None:
    out = render_scenario("ap_isolate", tmp_path / "out", roles=("dhcp",))
    pi = netns.add("pi")
    uplink = netns.add("up")
    netns.veth(pi, "pan-wl0", uplink, "pan-x")
    netns.exec(pi, ["ip", "addr", "add", f"{PI}/24", "dev", "pan-wl0"])
    netns.veth(pi, "eth0", uplink, "pan-y")
    netns.exec(pi, ["ip", "addr", "add", "10.203.65.2/24", "dev", "eth0"])
    _start_dnsmasq(netns, pi, out, tmp_path / "state")
    sockets = netns.exec(pi, ["ss", "-Hlnu", "sport", "= :53"]).stdout
    listening = sorted(set(re.findall(r"(\S+):53\b", sockets)))
    # Only the camera address: port 53 on loopback and the uplink stays free (systemd-resolved...).
    assert listening == [PI], sockets


@pytest.mark.netns
def test_vlan_per_camera_each_camera_on_its_own_link_keeps_its_address(
    netns: Netns, tmp_path: Path
) -> None:
    """The VLAN design without 802.1Q: each camera's VLAN bridge is a veth named like it,
    configured exactly as the rendered systemd-networkd files say (/32 + host route)."""
    out = render_scenario("vlan_per_camera", tmp_path / "out", roles=("access_point", "dhcp"))
    pi = netns.add("pi")
    netns.exec(pi, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    cameras = {"nord": "70:ee:50:00:00:01", "sued": "70:ee:50:00:00:02"}
    spaces: dict[str, str] = {}
    for name, mac in cameras.items():
        network = (out / f"etc/systemd/network/61-presence-vlan-{name}.network").read_text()
        bridge = re.search(r"^Name=(\S+)$", network, re.M).group(1)  # type: ignore[union-attr]
        address = re.search(r"^Address=(\S+)$", network, re.M).group(1)  # type: ignore[union-attr]
        route = re.search(r"^Destination=(\S+)$", network, re.M).group(1)  # type: ignore[union-attr]
        spaces[name] = _client(netns, pi, bridge, name, mac)
        netns.exec(pi, ["ip", "addr", "add", address, "dev", bridge])
        netns.exec(pi, ["ip", "route", "add", route, "dev", bridge])
    # Unknown stations land untagged on the camera interface itself.
    stranger = _client(netns, pi, "pan-wl0", "new", "02:00:00:00:00:42")
    netns.exec(pi, ["ip", "addr", "add", f"{PI}/24", "dev", "pan-wl0"])
    _start_dnsmasq(netns, pi, out, tmp_path / "state")

    assert _dhcp(netns, spaces["nord"], "wlan0", tmp_path)["ip"] == "10.203.64.11"
    sued = _dhcp(netns, spaces["sued"], "wlan0", tmp_path)
    assert sued["ip"] == "10.203.64.12"
    assert sued["ntpsrv"] == PI and sued["router"] == PI
    assert 100 <= int(_dhcp(netns, stranger, "wlan0", tmp_path)["ip"].rsplit(".", 1)[1]) <= 200

    # Each camera reaches the Pi...
    netns.exec(spaces["nord"], ["ping", "-c", "1", "-W", "2", PI])
    netns.exec(spaces["sued"], ["ping", "-c", "1", "-W", "2", PI])
    # ...but not the other camera, even with forwarding on: no shared link, no proxy ARP.
    blocked = netns.exec(
        spaces["nord"], ["ping", "-c", "1", "-W", "2", "10.203.64.12"], check=False
    )
    assert blocked.returncode != 0


@pytest.mark.netns
def test_serves_when_the_camera_address_appears_after_dnsmasq_started(
    netns: Netns, tmp_path: Path
) -> None:
    """At boot dnsmasq may start before the camera interface has its address (bind-dynamic)."""
    out = render_scenario("ap_isolate", tmp_path / "out", roles=("dhcp",))
    pi = netns.add("pi")
    nord = _client(netns, pi, "pan-wl0", "nord", "70:ee:50:00:00:01")
    _start_dnsmasq(netns, pi, out, tmp_path / "state")
    netns.exec(pi, ["ip", "addr", "add", f"{PI}/24", "dev", "pan-wl0"])
    lease = _dhcp(netns, nord, "wlan0", tmp_path)
    assert lease["ip"] == "10.203.64.11"
    assert _dns_query(netns, nord, PI, "nord") == "10.203.64.11"
