"""The lab's topology: names and addresses of every namespace, link, Pi and camera (pure data)."""

from __future__ import annotations

from dataclasses import dataclass, field

PREFIX = "pa-"
LAN_NS = "pa-lan"
WAN_NS = "pa-wan"
HOST_LINK = "pa-host"  # the veth end in the host's root namespace

HOST_ADDR = "10.203.0.1/30"
HOST_NET = "10.203.0.0/30"
LAN_HOST_SIDE = "10.203.0.2/30"
LAN_GATEWAY = "10.203.1.1"
LAN_NET = "10.203.1.0/24"
LAN_WAN_SIDE = "10.203.2.1/24"
WAN_ADDR = "10.203.2.2"
WAN_NTP = "10.203.2.123"
WAN_VPN = "10.203.2.50"
VPN_PORTS = (500, 4500)

# A phone on mobile data, out on the internet (pa-wan's side), for remote viewing: it dials
# the home router's "public" address, whose UDP port the router forwards to the first Pi.
PHONE_NS = "pa-phone"
WAN_PHONE_SIDE = "10.203.3.1/24"
PHONE_ADDR = "10.203.3.2/24"
ROUTER_PUBLIC = LAN_WAN_SIDE.split("/")[0]
WIREGUARD_PORT = 51820
WIREGUARD_TUNNEL = "10.203.8.0/24"  # remote_access.wireguard.subnet for the lab's tests

MAX_PIS = 8  # camera subnets 10.203.16.0/24 .. 10.203.23.0/24
MAX_CAMERAS = 80  # per Pi: reserved addresses .11 .. .90, below the DHCP range .100-.199
# The access_point role's default VLAN id of a camera: base + host number of its address.
VLAN_BASE = 100


@dataclass(frozen=True)
class Camera:
    """One emulated camera: its namespace, link on the Pi and reserved address."""

    name: str
    index: int  # 1-based within its Pi
    pi_index: int
    netns: str
    mac: str
    ip: str
    pi_port: str  # the veth end in the Pi's namespace
    bridge: str  # the bridge pi_port belongs to: wlan0, or brvlan<vid> (vlan_per_camera)


@dataclass(frozen=True)
class Pi:
    """One booted Debian "Pi"."""

    host: str  # inventory host name and container host name
    index: int
    netns: str
    address: str  # eth0, without prefix length
    lan_port: str  # the veth end in pa-lan (a port of br0)
    camera_gateway: str  # what the access_point role puts on wlan0
    camera_prefix: str  # e.g. 10.203.16
    cameras: list[Camera] = field(default_factory=list)

    @property
    def camera_network(self) -> dict[str, object]:
        """The inventory's camera_network for this Pi."""
        return {
            "interface": "wlan0",
            "address": f"{self.camera_gateway}/24",
            "dhcp_range": [f"{self.camera_prefix}.100", f"{self.camera_prefix}.199"],
        }


@dataclass(frozen=True)
class LabPlan:
    """Everything `lab up` creates, derived from the number of Pis and cameras."""

    release: str
    pis: list[Pi]
    isolation: str = "ap_isolate"

    @property
    def cameras(self) -> list[Camera]:
        return [cam for pi in self.pis for cam in pi.cameras]

    @property
    def namespaces(self) -> list[str]:
        return [
            LAN_NS,
            WAN_NS,
            PHONE_NS,
            *(p.netns for p in self.pis),
            *(c.netns for c in self.cameras),
        ]

    def pi(self, name: str) -> Pi:
        """The Pi called NAME (`pi`, `pi2`, `lab-pi2`), or the only one for `pi`."""
        for pi in self.pis:
            short = pi.netns.removeprefix(PREFIX)
            if name in (pi.host, short) or (name == "pi" and len(self.pis) == 1):
                return pi
        raise KeyError(name)

    def camera(self, name: str) -> Camera:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(name)


def make_plan(
    pis: int = 1, cameras: int = 2, release: str = "bookworm", isolation: str = "ap_isolate"
) -> LabPlan:
    """Lay out M Pis with N cameras each; cameras are numbered cam1.. across all Pis."""
    if not 1 <= pis <= MAX_PIS:
        raise ValueError(f"--pis {pis}: choose 1 to {MAX_PIS}")
    if not 0 <= cameras <= MAX_CAMERAS:
        raise ValueError(f"--cameras {cameras}: choose 0 to {MAX_CAMERAS}")
    if isolation not in ("ap_isolate", "vlan_per_camera"):
        raise ValueError(f"isolation {isolation}: choose ap_isolate or vlan_per_camera")
    result = []
    number = 0
    for k in range(1, pis + 1):
        single = pis == 1
        prefix = f"10.203.{15 + k}"
        cams = []
        for j in range(1, cameras + 1):
            number += 1
            if isolation == "vlan_per_camera":
                # What hostapd (dynamic_vlan, vlan_file `* wlan0.#`) would create when the
                # camera associates: wlan0.<vid>, inside bridge brvlan<vid> (the role's name).
                vid = VLAN_BASE + 10 + j
                port, bridge = f"wlan0.{vid}", f"brvlan{vid}"
            else:
                port, bridge = f"wl-cam{number}", "wlan0"
            cams.append(
                Camera(
                    name=f"cam{number}",
                    index=j,
                    pi_index=k,
                    netns=f"{PREFIX}cam-cam{number}",
                    mac=f"70:ee:50:00:{k:02x}:{j:02x}",
                    ip=f"{prefix}.{10 + j}",
                    pi_port=port,
                    bridge=bridge,
                )
            )
        result.append(
            Pi(
                host="lab-pi" if single else f"lab-pi{k}",
                index=k,
                netns=f"{PREFIX}pi" if single else f"{PREFIX}pi{k}",
                address=f"10.203.1.{1 + k}",
                lan_port=f"lan-pi{k}",
                camera_gateway=f"{prefix}.1",
                camera_prefix=prefix,
                cameras=cams,
            )
        )
    return LabPlan(release=release, pis=result, isolation=isolation)
