"""pa-wan, the lab's "internet": an NTP server, a Netatmo VPN stand-in and traffic counters."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from appliance.lab import plan as topo
from appliance.lab.proc import spawn, stop_recorded
from appliance.lab.run import LabError, in_netns, run
from appliance.lab.state import LabState, alive

# Counts every TCP/UDP packet that reaches pa-wan by destination address, protocol and
# port, and ICMP separately. Counters, not logs: nf_log prints nothing from a namespace.
SINK_RULESET = """\
table inet lab_sink {
	set seen {
		type ipv4_addr . inet_proto . inet_service
		flags dynamic
		counter
		size 65535
	}
	counter icmp_packets { }
	chain prerouting {
		type filter hook prerouting priority -300; policy accept;
		iifname "lo" accept
		meta l4proto { tcp, udp } add @seen { ip daddr . meta l4proto . th dport }
		meta l4proto icmp counter name "icmp_packets"
	}
}
"""


def _chrony_conf(directory: Path) -> str:
    return (
        "# pa-wan's NTP server: serves its own clock, never sets the host's (chronyd -x).\n"
        "local stratum 8\n"
        "allow\n"
        f"bindaddress {topo.WAN_NTP}\n"
        "cmdport 0\n"
        "bindcmdaddress /\n"
        f"pidfile {directory / 'chronyd.pid'}\n"
    )


def start_wan(lab: Path, state: LabState) -> None:
    """Load the counters and start the NTP server and the VPN listener in pa-wan."""
    directory = lab / "wan"
    directory.mkdir(parents=True, exist_ok=True)
    rules = directory / "sink.nft"
    rules.write_text(SINK_RULESET)
    run(in_netns(topo.WAN_NS, "nft", "-f", str(rules)), timeout=15)
    ntp_start(lab, state)
    pid = spawn(
        in_netns(
            topo.WAN_NS,
            sys.executable,
            "-m",
            "appliance.lab.vpn_listener",
            "--address",
            topo.WAN_VPN,
            "--ports",
            *map(str, topo.VPN_PORTS),
            "--out",
            str(directory / "vpn.json"),
        ),
        lab / "logs" / "wan-vpn.log",
    )
    state.add_process("wan-vpn", pid, topo.WAN_NS)


def ntp_start(lab: Path, state: LabState) -> None:
    """Start pa-wan's chronyd (the Pi's upstream NTP server); no-op if it runs."""
    proc = state.process("wan-ntp")
    if proc and alive(proc):
        return
    state.data["processes"] = [p for p in state.data["processes"] if p["role"] != "wan-ntp"]
    conf = lab / "wan" / "chrony.conf"
    conf.write_text(_chrony_conf(conf.parent))
    pid = spawn(
        in_netns(topo.WAN_NS, "chronyd", "-d", "-x", "-u", "root", "-f", str(conf)),
        lab / "logs" / "wan-ntp.log",
    )
    state.add_process("wan-ntp", pid, topo.WAN_NS)
    _wait_udp_listening(topo.WAN_NS, 123, timeout=10)


def ntp_stop(state: LabState) -> None:
    """Stop pa-wan's chronyd (to test that the Pi keeps serving time on its own)."""
    proc = state.process("wan-ntp")
    if proc:
        stop_recorded(proc)
        state.data["processes"].remove(proc)
        state.save()


def ntp_running(state: LabState) -> bool:
    proc = state.process("wan-ntp")
    return bool(proc and alive(proc))


def counters(lab: Path) -> dict[str, Any]:
    """What reached the "internet": packets per `ADDR/PROTO/PORT`, ICMP, VPN datagrams per port."""
    out = run(in_netns(topo.WAN_NS, "nft", "-j", "list", "table", "inet", "lab_sink"), timeout=15)
    by_destination: dict[str, int] = {}
    icmp = 0
    for item in json.loads(out.stdout)["nftables"]:
        if "set" in item and item["set"]["name"] == "seen":
            for elem in item["set"].get("elem", []):
                addr, proto, port = elem["elem"]["val"]["concat"]
                by_destination[f"{addr}/{proto}/{port}"] = elem["elem"]["counter"]["packets"]
        elif "counter" in item and item["counter"]["name"] == "icmp_packets":
            icmp = item["counter"]["packets"]
    try:
        vpn = {int(k): v for k, v in json.loads((lab / "wan" / "vpn.json").read_text()).items()}
    except (OSError, ValueError):
        vpn = {}
    return {"by_destination": by_destination, "icmp": icmp, "vpn": vpn}


def _wait_udp_listening(netns: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = run(in_netns(netns, "ss", "-Hlun", f"sport = :{port}"), check=False).stdout
        if out.strip():
            return
        time.sleep(0.2)
    raise LabError(f"{netns}: nothing listens on UDP port {port} after {timeout:.0f} s")
