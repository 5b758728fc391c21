"""Create and remove the lab's network namespaces, veths and bridges (10.203.0.0/19 only)."""

from __future__ import annotations

from appliance.lab import plan as topo
from appliance.lab.plan import Camera, LabPlan, Pi
from appliance.lab.run import ip, run
from appliance.lab.state import LabState

HOST_NAT = f"""\
table ip lab_home {{
	chain postrouting {{
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr {topo.HOST_NET} oifname "br0" masquerade
	}}
}}
"""


def lab_namespaces() -> list[str]:
    """Every network namespace whose name has the lab's prefix (`pa-`)."""
    out = run(["ip", "netns", "list"], timeout=15).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(topo.PREFIX)]


def add_namespace(name: str, state: LabState) -> None:
    state.add("namespaces", name)  # recorded first: a crash right after still gets it removed
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)


def add_veth(name: str, netns: str, peer: str, peer_netns: str) -> None:
    """A veth pair: NAME in NETNS, PEER in PEER_NETNS (both down, without addresses)."""
    ip(
        "link",
        "add",
        name,
        "netns",
        netns,
        "type",
        "veth",
        "peer",
        "name",
        peer,
        "netns",
        peer_netns,
    )


def sysctl(netns: str, setting: str) -> None:
    run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", setting], timeout=15)


def build_core(state: LabState) -> None:
    """pa-lan (home router, br0 toward the Pis), pa-wan (internet) and the host link."""
    lan, wan = topo.LAN_NS, topo.WAN_NS
    add_namespace(lan, state)
    add_namespace(wan, state)
    ip("link", "add", "br0", "type", "bridge", netns=lan)
    ip("addr", "add", f"{topo.LAN_GATEWAY}/24", "dev", "br0", netns=lan)
    ip("link", "set", "br0", "up", netns=lan)
    # lan <-> wan
    add_veth("wan", lan, "eth0", wan)
    ip("addr", "add", topo.LAN_WAN_SIDE, "dev", "wan", netns=lan)
    ip("link", "set", "wan", "up", netns=lan)
    for addr in (topo.WAN_ADDR, topo.WAN_NTP, topo.WAN_VPN):
        ip("addr", "add", f"{addr}/24", "dev", "eth0", netns=wan)
    ip("link", "set", "eth0", "up", netns=wan)
    ip("route", "add", "default", "via", topo.LAN_WAN_SIDE.split("/")[0], netns=wan)
    # The home router sends everything it has no route for to "the internet".
    ip("route", "add", "default", "via", topo.WAN_ADDR, netns=lan)
    sysctl(lan, "net.ipv4.ip_forward=1")
    # host <-> lan: only so a browser on the host reaches the Pis' dashboards.
    state.data["host_link"] = topo.HOST_LINK
    state.save()
    ip("link", "add", topo.HOST_LINK, "type", "veth", "peer", "name", "host", "netns", lan)
    ip("addr", "add", topo.HOST_ADDR, "dev", topo.HOST_LINK)
    ip("link", "set", topo.HOST_LINK, "up")
    ip("addr", "add", topo.LAN_HOST_SIDE, "dev", "host", netns=lan)
    ip("link", "set", "host", "up", netns=lan)
    ip("route", "add", topo.LAN_NET, "via", topo.LAN_HOST_SIDE.split("/")[0])
    # The host stands for a laptop on the home network: masquerade it behind the router's
    # LAN address, so a Pi firewall that admits only its own LAN still lets the browser in.
    run(["ip", "netns", "exec", lan, "nft", "-f", "-"], input_text=HOST_NAT, timeout=15)


# pa-wan routes only the phone's traffic (it is otherwise a sink that forwards nothing).
WAN_PHONE_FORWARD = """\
table inet lab_phone {
	chain forward {
		type filter hook forward priority filter; policy drop;
		iifname "phone" accept
		oifname "phone" accept
	}
}
"""


def build_phone(state: LabState) -> None:
    """pa-phone: a phone on mobile data, reaching the home only through the router's
    public address (pa-lan's wan side), never through the home network itself."""
    add_namespace(topo.PHONE_NS, state)
    add_veth("phone", topo.WAN_NS, "eth0", topo.PHONE_NS)
    ip("addr", "add", topo.WAN_PHONE_SIDE, "dev", "phone", netns=topo.WAN_NS)
    ip("link", "set", "phone", "up", netns=topo.WAN_NS)
    ip("addr", "add", topo.PHONE_ADDR, "dev", "eth0", netns=topo.PHONE_NS)
    ip("link", "set", "eth0", "up", netns=topo.PHONE_NS)
    ip("route", "add", "default", "via", topo.WAN_PHONE_SIDE.split("/")[0], netns=topo.PHONE_NS)
    run(["ip", "netns", "exec", topo.WAN_NS, "nft", "-f", "-"], input_text=WAN_PHONE_FORWARD)
    sysctl(topo.WAN_NS, "net.ipv4.ip_forward=1")


def forward_wireguard(pi: Pi) -> None:
    """The home router forwards the WireGuard UDP port to the Pi, as a user sets up theirs."""
    rules = f"""\
table ip lab_port_forward {{
	chain prerouting {{
		type nat hook prerouting priority dstnat; policy accept;
		iifname "wan" udp dport {topo.WIREGUARD_PORT} dnat to {pi.address}:{topo.WIREGUARD_PORT}
	}}
}}
"""
    run(["ip", "netns", "exec", topo.LAN_NS, "nft", "-f", "-"], input_text=rules, timeout=15)


def build_pi_network(pi: Pi, plan: LabPlan, state: LabState) -> None:
    """The Pi's namespace: eth0 on the home network (configured, as on a user's Pi) and the
    wlan0 "radio" bridge, left without an address for the access_point role."""
    add_namespace(pi.netns, state)
    add_veth(pi.lan_port, topo.LAN_NS, "eth0", pi.netns)
    ip("link", "set", pi.lan_port, "master", "br0", "up", netns=topo.LAN_NS)
    ip("addr", "add", f"{pi.address}/24", "dev", "eth0", netns=pi.netns)
    ip("link", "set", "eth0", "up", netns=pi.netns)
    ip("route", "add", "default", "via", topo.LAN_GATEWAY, netns=pi.netns)
    # Like a home router with a static route to the Pi's camera subnet: the cameras are
    # routable from the home network, so only the Pi's firewall keeps them unreachable.
    ip("route", "add", f"{pi.camera_prefix}.0/24", "via", pi.address, netns=topo.LAN_NS)
    # The radio's interface exists in both isolation modes (hostapd's `interface=wlan0`).
    ip("link", "add", "wlan0", "type", "bridge", netns=pi.netns)
    ip("link", "set", "wlan0", "up", netns=pi.netns)


def build_camera_link(cam: Camera, pi: Pi, plan: LabPlan, state: LabState) -> None:
    """The camera's namespace with `wlan0` (the camera's MAC) linked to the Pi's side.

    ap_isolate: the Pi's end is a port of the wlan0 bridge with port isolation on, which
    is what hostapd's ap_isolate does between stations. vlan_per_camera: the Pi's end is
    interface named like hostapd's dynamic VLAN interface (wlan0.<vid>) in the bridge
    hostapd would put it in (brvlan<vid>, the access_point role's vlan_bridge).
    """
    add_namespace(cam.netns, state)
    add_veth(cam.pi_port, pi.netns, "wlan0", cam.netns)
    ip("link", "set", "wlan0", "address", cam.mac, "up", netns=cam.netns)
    if (
        cam.bridge != "wlan0"
        and ip("link", "show", cam.bridge, netns=pi.netns, check=False).returncode != 0
    ):
        ip("link", "add", cam.bridge, "type", "bridge", netns=pi.netns)
        ip("link", "set", cam.bridge, "up", netns=pi.netns)
    ip("link", "set", cam.pi_port, "master", cam.bridge, netns=pi.netns)
    if plan.isolation == "ap_isolate":
        run(["bridge", "-n", pi.netns, "link", "set", "dev", cam.pi_port, "isolated", "on"])
    ip("link", "set", cam.pi_port, "up", netns=pi.netns)


def remove_host_link() -> None:
    """Delete the host's end of the host<->lan veth (its route goes with it)."""
    if ip("link", "show", topo.HOST_LINK, check=False).returncode == 0:
        ip("link", "del", topo.HOST_LINK, check=False)


def delete_namespace(name: str) -> None:
    ip("netns", "del", name, check=False)
