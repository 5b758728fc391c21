"""`init`'s checks of the Pi before anything is written: SSH, sudo, OS, model, a Wi-Fi interface.

One ssh call gathers the facts (appliance.doctor_ssh); `preflight_checks` turns them into
lines, each failure with a fix; `PiFacts` carries what init proposes from (uplink, networks).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from appliance.doctor_checks import FAIL, OK, WARN, Check, check_os, check_sudo, parse_os_release
from appliance.doctor_ssh import PROLOGUE, RemoteError, Section, run_script

SCRIPT = (
    PROLOGUE
    + r"""
sec wifi
for d in /sys/class/net/*; do
  if [ -e "$d/wireless" ] || [ -e "$d/phy80211" ]; then basename "$d"; fi
done
end 0
sec links; ls /sys/class/net; end $?
sec route; ip -4 route show default 2>&1; end $?
sec addresses; ip -4 -o addr show 2>&1; end $?
"""
)

SSH_FIX = (
    "check the address; enable SSH on the Pi (Raspberry Pi Imager: Services > Enable SSH); "
    "then `ssh-copy-id USER@ADDRESS` once (it also accepts the host key) so the key logs in "
    "without a password"
)


@dataclass
class PiFacts:
    """What the Pi told us that init's proposals depend on."""

    codename: str = ""
    arch: str = ""
    model: str = ""
    virt: str = "none"
    wifi_interfaces: list[str] = field(default_factory=list)
    uplink: str = ""
    networks: list[ipaddress.IPv4Network] = field(default_factory=list)

    @property
    def container(self) -> bool:
        return self.virt not in ("", "none") and self.virt not in ("kvm", "qemu", "vmware")


def parse_facts(sections: dict[str, Section]) -> PiFacts:
    def text(name: str) -> str:
        sec = sections.get(name)
        return sec.text if sec is not None and sec.rc == 0 else ""

    facts = PiFacts(
        codename=parse_os_release(text("os")).get("VERSION_CODENAME", ""),
        arch=text("arch").strip(),
        model=text("model").strip(),
        virt=text("virt").strip() or "none",
        wifi_interfaces=text("wifi").split(),
    )
    # A container has no radio (the built-in lab): its `wlan*` link stands in for one.
    if not facts.wifi_interfaces and facts.container:
        facts.wifi_interfaces = [n for n in text("links").split() if n.startswith("wlan")]
    for line in text("route").splitlines():
        words = line.split()
        if "dev" in words and words.index("dev") + 1 < len(words):
            facts.uplink = words[words.index("dev") + 1]
            break
    for line in text("addresses").splitlines():
        words = line.split()
        # The Wi-Fi side's own address (a Pi provisioned before) is no clash for init.
        if len(words) > 1 and words[1] in facts.wifi_interfaces:
            continue
        if "inet" in words and words.index("inet") + 1 < len(words):
            try:
                iface = ipaddress.IPv4Interface(words[words.index("inet") + 1])
            except ValueError:
                continue
            if not iface.ip.is_loopback:
                facts.networks.append(iface.network)
    return facts


def preflight_checks(
    sections: dict[str, Section], user: str, facts: PiFacts, interface: str | None
) -> list[Check]:
    """The lines init shows before writing; any `fail` stops it."""
    checks = [check_sudo(sections, user), check_os(sections, lab=facts.container)]
    wanted = interface or (facts.wifi_interfaces[0] if facts.wifi_interfaces else "")
    if not facts.wifi_interfaces:
        checks.append(
            Check(
                "wifi",
                FAIL,
                "no Wi-Fi interface on the Pi",
                "`sudo rfkill unblock wifi`, remove `dtoverlay=disable-wifi` from "
                "/boot/firmware/config.txt, or plug in a USB Wi-Fi adapter",
            )
        )
    elif wanted not in facts.wifi_interfaces:
        checks.append(
            Check(
                "wifi",
                FAIL,
                f"{wanted} is not a Wi-Fi interface (Wi-Fi: {', '.join(facts.wifi_interfaces)})",
                "choose one of those for camera_network.interface",
            )
        )
    else:
        note = " (a container: no radio, taken by name)" if facts.container else ""
        checks.append(Check("wifi", OK, f"Wi-Fi interface {wanted}{note}"))
    if not facts.uplink:
        checks.append(
            Check(
                "uplink",
                WARN,
                "no default route on the Pi: eth0 assumed as its home-network side",
                "set uplink_interface in the inventory if that is wrong",
            )
        )
    elif facts.uplink == wanted:
        checks.append(
            Check(
                "uplink",
                FAIL,
                f"the Pi reaches your network through {wanted}, the interface the cameras "
                "would get",
                "connect the Pi by Ethernet (or a second Wi-Fi adapter) and run init again",
            )
        )
    else:
        checks.append(Check("uplink", OK, f"home network on {facts.uplink}"))
    return checks


def run_preflight(
    host_vars: dict[str, Any], host_name: str, interface: str | None, timeout: float = 30.0
) -> tuple[list[Check], PiFacts]:
    """Ask the Pi (one ssh call) and return the checks and facts; ssh failure is one check."""
    user = str(host_vars.get("ansible_user") or "the SSH user")
    try:
        result = run_script(host_name, host_vars, SCRIPT, timeout=timeout)
    except RemoteError as err:
        where = f"{user}@{host_vars.get('ansible_host', host_name)}"
        return [Check("ssh", FAIL, f"cannot reach {where}: {err}", SSH_FIX)], PiFacts()
    facts = parse_facts(result.sections)
    ssh = Check("ssh", OK, f"reachable ({result.seconds:.1f} s)")
    return [ssh, *preflight_checks(result.sections, user, facts, interface)], facts
