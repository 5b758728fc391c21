"""firewall role: the rendered ruleset passes `nft -c`, and loaded in namespaces it enforces
every row of the policy table (probes bounded in time, drops counted and logged by ulogd2)."""

from __future__ import annotations

import difflib
import itertools
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.roles.conftest import (
    ANSWER_WAIT,
    DROP_WAIT,
    Netns,
    load_scenario,
    render_inventory,
    render_scenario,
    run,
    write_inventory,
)

SCENARIOS = ("ap_isolate", "vlan_per_camera", "band5_wpa3")
RULESET = "etc/presence-appliance/firewall.nft"
PROBE = Path(__file__).resolve().parent / "fw_probe.py"
KINDS = ("pi", "camera", "lan", "internet", "ntp")


def nft_check(path: Path) -> subprocess.CompletedProcess[str]:
    # nft -c talks to the kernel: do it in a throwaway network namespace, never the host's.
    return run(["unshare", "--net", "nft", "-c", "-f", str(path)], check=False)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_nft_accepts_rendered_ruleset(scenario: str, tmp_path: Path) -> None:
    out = render_scenario(scenario, tmp_path, roles=("firewall",))
    result = nft_check(out / RULESET)
    assert result.returncode == 0, result.stderr
    text = (out / RULESET).read_text()
    # Replaces our table only: make sure it exists, delete it, define it (one transaction).
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert not any("flush" in line for line in body)
    assert body[:3] == [
        "table inet presence_appliance",
        "delete table inet presence_appliance",
        "table inet presence_appliance {",
    ]
    for cam in load_scenario(scenario)["cameras"]:
        cam_id = "cam_" + cam["name"].replace("-", "_")
        for kind in KINDS:
            assert f"counter {cam_id}_drop_{kind} {{ packets 0 bytes 0 }}" in text
        assert f"counter {cam_id}_vpn {{" in text
        vpn_rule = f'counter name "{cam_id}_vpn" accept'
        assert (vpn_rule in text) == (cam.get("cloud") == "allow")
    assert "set login_ban_v4 {\n\t\ttype ipv4_addr\n\t\tflags timeout" in text
    assert "set login_ban_v6 {\n\t\ttype ipv6_addr\n\t\tflags timeout" in text


def test_nft_rejects_a_broken_ruleset(tmp_path: Path) -> None:
    out = render_scenario("ap_isolate", tmp_path, roles=("firewall",))
    path = out / RULESET
    path.write_text(path.read_text().replace("udp dport 67 accept", "udp dport 67 acept"))
    result = nft_check(path)
    assert result.returncode != 0 and "syntax error" in result.stderr


def test_vlan_mode_guards_the_camera_vlan_bridges(tmp_path: Path) -> None:
    text = (render_scenario("vlan_per_camera", tmp_path, roles=("firewall",)) / RULESET).read_text()
    assert 'iifname "brvlan*" goto camera_to_pi' in text
    assert 'iifname "brvlan*" goto camera_forward' in text
    assert 'oifname "brvlan*" goto to_cameras' in text


def _render_variant(tmp_path: Path, name: str, variables: dict[str, Any]) -> Path:
    inventory = write_inventory(variables, tmp_path / f"{name}.yml")
    return render_inventory(inventory, tmp_path / name, roles=("firewall", "dhcp"))


def test_one_camera_block_to_allow_changes_only_its_own_rules(tmp_path: Path) -> None:
    before = load_scenario("ap_isolate")
    after = json.loads(json.dumps(before))
    assert after["cameras"][1]["name"] == "sued" and after["cameras"][1]["cloud"] == "block"
    after["cameras"][1]["cloud"] = "allow"
    old = _render_variant(tmp_path, "before", before)
    new = _render_variant(tmp_path, "after", after)
    # dnsmasq's file (nftset= for every camera alike) does not change: no dnsmasq restart.
    cameras_conf = "etc/dnsmasq.d/cameras.conf"
    assert (old / cameras_conf).read_text() == (new / cameras_conf).read_text()
    old_lines = (old / RULESET).read_text().splitlines()
    new_lines = (new / RULESET).read_text().splitlines()
    changed = [
        line
        for line in difflib.unified_diff(old_lines, new_lines, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed, "switching sued to allow changed nothing"
    # Every changed line belongs to camera sued: its comment and its own forward chain.
    chain = new_lines[new_lines.index("\tchain cam_sued_forward {") :]
    chain = chain[: chain.index("\t}")]
    for line in changed:
        assert line[1:] in chain or "sued" in line, line
    assert any('counter name "cam_sued_vpn" accept' in line for line in changed)


def test_no_admin_sources_means_ssh_from_the_lan_and_no_direct_camera_access(
    tmp_path: Path,
) -> None:
    text = (render_scenario("ap_isolate", tmp_path, roles=("firewall",)) / RULESET).read_text()
    assert "\t\ttcp dport 22 accept\n" in text
    to_cameras = text[text.index("chain to_cameras {") :]
    to_cameras = to_cameras[: to_cameras.index("}")]
    assert "accept" in to_cameras and "tcp dport" not in to_cameras


def test_wireguard_peers_reach_the_dashboard_only(tmp_path: Path) -> None:
    variables = load_scenario("ap_isolate")
    variables["remote_access"] = {
        "wireguard": {"listen_port": 51999, "subnet": "10.44.0.0/24", "peers": []}
    }
    out = _render_variant(tmp_path, "wg", variables)
    result = nft_check(out / RULESET)
    assert result.returncode == 0, result.stderr
    text = (out / RULESET).read_text()
    assert "\t\tudp dport 51999 accept\n" in text
    assert 'iifname "wg0" goto remote_to_pi' in text
    assert 'iifname "wg0" goto remote_drop_forward' in text
    assert 'log prefix "pa tunnel kind=forward "' in text
    plain = render_scenario("ap_isolate", tmp_path / "plain", roles=("firewall",)) / RULESET
    assert "wg0" not in plain.read_text()


def test_other_tables_survive_loading_it_twice(tmp_path: Path) -> None:
    out = render_scenario("ap_isolate", tmp_path, roles=("firewall",))
    other = "table ip docker_like {\n\tchain forward {\n\t\ttype filter hook forward priority 0;\n\t}\n}\n"
    script = (
        f"nft -f - <<'EOF'\n{other}EOF\n"
        f"nft -f {out / RULESET} && nft -f {out / RULESET} && nft list tables"
    )
    result = run(["unshare", "--net", "sh", "-c", script])
    assert "table ip docker_like" in result.stdout
    assert "table inet presence_appliance" in result.stdout


# ---------------------------------------------------------------------------------------
# The policy table, probed in namespaces (addresses: this test's 10.203.192.0/20).
#
#   cam nord (allow) ─┐                         ┌ lan 10.203.193.1 (router), .10 (admin)
#   cam sued (block) ─┼─ wlan0 bridge ─ pi ─ eth0 10.203.193.2
#   stranger ─────────┘  10.203.192.1/24          lan ─ wan 10.203.194.2, .3 (a "Netatmo" address)

PI_CAM = "10.203.192.1"
PI_LAN = "10.203.193.2"
LAN = "10.203.193.1"
ADMIN = "10.203.193.10"
WAN = "10.203.194.2"
NETATMO = "10.203.194.3"
NORD, SUED, STRANGER = "10.203.192.11", "10.203.192.12", "10.203.192.150"
FTP_PASSIVE = (50000, 50019)


def _policy_inventory(tmp_path: Path) -> dict[str, Any]:
    variables = load_scenario("ap_isolate")
    variables["camera_network"] = {
        "interface": "wlan0",
        "address": f"{PI_CAM}/24",
        "dhcp_range": ["10.203.192.100", "10.203.192.200"],
    }
    variables["cameras"][0]["ip"] = NORD
    variables["cameras"][1]["ip"] = SUED
    # nord exports recordings to the Pi by FTP; sued does not.
    variables["recordings"] = {"ftp": {"passive_ports": list(FTP_PASSIVE)}}
    variables["cameras"][0]["recordings"] = True
    variables["cameras"][0]["ftp_password"] = "nord-ftp-Secret-1"
    variables["firewall"] = {"admin_sources": [f"{ADMIN}/32"]}
    # 10.203.194.0/24 plays the internet here: the private list names the rest explicitly.
    variables["firewall_private_v4"] = ["10.203.192.0/23", "172.16.0.0/12", "192.168.0.0/16"]
    variables["firewall_log_file"] = str(tmp_path / "log" / "fw.json")
    variables["firewall_cameras_file"] = str(tmp_path / "cams.json")
    variables["firewall_state_dir"] = str(tmp_path / "state")
    return variables


class FirewallLab:
    """Namespaces pi, lan, wan and three "cameras"; listeners everywhere; the ruleset loaded."""

    def __init__(self, netns: Netns, tmp_path: Path) -> None:
        self.netns = netns
        self.tmp = tmp_path
        self.ns: dict[str, str] = {}

    def add(self, role: str) -> str:
        name = f"fwt-{role}-{self.netns.tag}"
        run(["ip", "netns", "add", name])
        self.netns.namespaces.append(name)
        self.netns.exec(name, ["ip", "link", "set", "lo", "up"])
        self.ns[role] = name
        return name

    def sh(self, role: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.netns.exec(self.ns[role], list(argv), check=check)

    def build(self) -> None:
        for role in ("pi", "lan", "wan", "nord", "sued", "stranger"):
            self.add(role)
        pi = self.ns["pi"]
        self.sh("pi", "ip", "link", "add", "wlan0", "type", "bridge")
        self.sh("pi", "ip", "addr", "add", f"{PI_CAM}/24", "dev", "wlan0")
        self.sh("pi", "ip", "link", "set", "wlan0", "up")
        cams = {
            "nord": (NORD, "70:ee:50:00:00:01"),
            "sued": (SUED, "70:ee:50:00:00:02"),
            "stranger": (STRANGER, "02:00:00:00:00:99"),
        }
        for i, (role, (addr, mac)) in enumerate(cams.items()):
            port = f"wl{i}"
            self.netns.veth(pi, port, self.ns[role], "wlan0")
            self.sh("pi", "ip", "link", "set", port, "master", "wlan0")
            # What hostapd's ap_isolate does between stations.
            run(["bridge", "-n", pi, "link", "set", "dev", port, "isolated", "on"])
            self.sh(role, "ip", "link", "set", "wlan0", "down")
            self.sh(role, "ip", "link", "set", "wlan0", "address", mac)
            self.sh(role, "ip", "link", "set", "wlan0", "up")
            self.sh(role, "ip", "addr", "add", f"{addr}/24", "dev", "wlan0")
            self.sh(role, "ip", "route", "add", "default", "via", PI_CAM)
        self.netns.veth(pi, "eth0", self.ns["lan"], "eth0")
        self.sh("pi", "ip", "addr", "add", f"{PI_LAN}/24", "dev", "eth0")
        self.sh("pi", "ip", "route", "add", "default", "via", LAN)
        self.sh("pi", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        self.sh("lan", "ip", "addr", "add", f"{LAN}/24", "dev", "eth0")
        self.sh("lan", "ip", "addr", "add", f"{ADMIN}/24", "dev", "eth0")
        self.netns.veth(self.ns["lan"], "wan", self.ns["wan"], "eth0")
        self.sh("lan", "ip", "addr", "add", "10.203.194.1/24", "dev", "wan")
        self.sh("lan", "ip", "route", "add", "10.203.192.0/24", "via", PI_LAN)
        self.sh("lan", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        self.sh("wan", "ip", "addr", "add", f"{WAN}/24", "dev", "eth0")
        self.sh("wan", "ip", "addr", "add", f"{NETATMO}/24", "dev", "eth0")
        self.sh("wan", "ip", "route", "add", "default", "via", "10.203.194.1")
        # Listeners: the Pi's services, a LAN host, the internet, a camera's HTTP API.
        self.listen(
            "pi", tcp=[21, 22, 53, 80, 443, 8080, *FTP_PASSIVE, 50020], udp=[53, 67, 123, 9999]
        )
        self.listen("lan", tcp=[8080], udp=[9999])
        self.listen("wan", tcp=[80, 443], udp=[123, 500, 4500])
        self.listen("nord", tcp=[80], udp=[])
        self.listen("sued", tcp=[80], udp=[])

    def listen(self, role: str, tcp: list[int], udp: list[int]) -> None:
        log = self.tmp / f"listen-{role}.log"
        argv = [sys.executable, str(PROBE), "listen", "--tcp", *map(str, tcp)]
        argv += ["--udp", *map(str, udp)]
        self.netns.start(self.ns[role], argv, log)
        deadline = time.monotonic() + 10
        while "listening" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, f"listener in {role} did not start"
            time.sleep(0.05)

    def probe(
        self,
        role: str,
        kind: str,
        host: str,
        port: int,
        source: str | None = None,
        wait: float = ANSWER_WAIT,
    ) -> str:
        """The listener's answer ('from ADDR'), or '' when the packet did not get through
        within WAIT seconds."""
        argv = [sys.executable, str(PROBE), "probe", kind, host, str(port), "--timeout", str(wait)]
        if source:
            argv += ["--source", source]
        result = self.sh(role, *argv, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    def ping(self, role: str, host: str, *extra: str, wait: float = ANSWER_WAIT) -> bool:
        result = self.sh(role, "ping", *extra, "-c", "1", "-W", f"{wait:g}", host, check=False)
        return result.returncode == 0

    def counters(self) -> dict[str, int]:
        out = self.sh("pi", "nft", "-j", "list", "counters", "table", "inet", "presence_appliance")
        return {
            item["counter"]["name"]: item["counter"]["packets"]
            for item in json.loads(out.stdout)["nftables"]
            if "counter" in item
        }


@pytest.fixture
def fwlab(netns: Netns, tmp_path: Path) -> FirewallLab:
    lab = FirewallLab(netns, tmp_path)
    lab.build()
    return lab


@pytest.mark.netns
def test_policy_table_in_namespaces(fwlab: FirewallLab, netns: Netns, tmp_path: Path) -> None:
    inventory = write_inventory(_policy_inventory(tmp_path), tmp_path / "inventory.yml")
    out = render_inventory(inventory, tmp_path / "out", roles=("firewall",))
    (tmp_path / "log").mkdir()
    # The helper's camera list, rendered under OUT at its (test) target path.
    cams_file = tmp_path / "cams.json"
    cams_file.write_text((out / str(cams_file).lstrip("/")).read_text())
    conf = out / "etc/ulogd.conf"
    netns.start_ulogd(fwlab.ns["pi"], conf, tmp_path / "ulogd.log")
    fwlab.sh("pi", "nft", "-f", str(out / RULESET))

    def blocked(role: str, kind: str, host: str, port: int, counter: str) -> None:
        before = fwlab.counters()[counter]
        assert fwlab.probe(role, kind, host, port, wait=DROP_WAIT) == "", (
            f"{role} reached {host} {kind}/{port}"
        )
        assert fwlab.counters()[counter] > before, f"{counter} did not count {kind}/{port}"

    # camera -> Pi: DHCP, DNS, NTP, ping; nothing else (SSH, the web login...).
    for kind, port in (("udp", 67), ("udp", 53), ("tcp", 53), ("udp", 123)):
        assert fwlab.probe("nord", kind, PI_CAM, port) == f"from {NORD}", (kind, port)
    assert fwlab.ping("nord", PI_CAM)
    for port in (22, 443, 80):
        blocked("nord", "tcp", PI_CAM, port, "cam_nord_drop_pi")
        blocked("sued", "tcp", PI_CAM, port, "cam_sued_drop_pi")
    # ... nor the Pi's home-network address, nor over IPv6.
    blocked("sued", "tcp", PI_LAN, 22, "cam_sued_drop_pi")
    link_local = fwlab.sh("pi", "ip", "-6", "-o", "addr", "show", "dev", "wlan0", "scope", "link")
    pi_v6 = re.search(r"inet6 (fe80::[0-9a-f:]+)/", link_local.stdout)
    assert pi_v6, link_local.stdout
    before = fwlab.counters()["cam_nord_drop_pi"]
    assert not fwlab.ping("nord", f"{pi_v6.group(1)}%wlan0", "-6", wait=DROP_WAIT)
    assert fwlab.counters()["cam_nord_drop_pi"] > before

    # camera -> Pi's FTP (recordings): control and the passive range on the camera-side
    # address, for the recording camera only; a camera without recordings reaches no FTP.
    for port in (21, *FTP_PASSIVE):
        assert fwlab.probe("nord", "tcp", PI_CAM, port) == f"from {NORD}", port
        blocked("sued", "tcp", PI_CAM, port, "cam_sued_drop_pi")
    blocked("stranger", "tcp", PI_CAM, 21, "unknown_drop_pi")
    blocked("nord", "tcp", PI_CAM, FTP_PASSIVE[1] + 1, "cam_nord_drop_pi")  # outside the range
    blocked("nord", "tcp", PI_LAN, 21, "cam_nord_drop_pi")  # not the uplink address
    blocked("lan", "tcp", PI_LAN, 21, "lan_drop_pi")  # the home network: no FTP at all
    blocked("lan", "tcp", PI_CAM, 21, "lan_drop_pi")
    blocked("lan", "tcp", PI_CAM, FTP_PASSIVE[0], "lan_drop_pi")

    # camera -> camera, routed through the Pi (ap_isolate already stops the direct way).
    fwlab.sh("nord", "ip", "route", "add", f"{SUED}/32", "via", PI_CAM)
    blocked("nord", "tcp", SUED, 80, "cam_nord_drop_camera")

    # camera -> home network: nothing, whatever the cloud setting.
    for role in ("nord", "sued"):
        blocked(role, "tcp", LAN, 8080, f"cam_{role}_drop_lan")
        blocked(role, "udp", LAN, 9999, f"cam_{role}_drop_lan")

    # camera -> NTP anywhere but the Pi: dropped and counted.
    for role in ("nord", "sued"):
        blocked(role, "udp", WAN, 123, f"cam_{role}_drop_ntp")

    # camera -> internet: the allowed camera's VPN, masqueraded; nothing for the blocked one.
    before = fwlab.counters()["cam_nord_vpn"]
    for port in (500, 4500):
        assert fwlab.probe("nord", "udp", WAN, port) == f"from {PI_LAN}", port
        blocked("sued", "udp", WAN, port, "cam_sued_drop_internet")
    assert fwlab.counters()["cam_nord_vpn"] >= before + 2
    # TCP 443 only to the addresses dnsmasq resolved for Netatmo's domains (the set).
    blocked("nord", "tcp", NETATMO, 443, "cam_nord_drop_internet")
    fwlab.sh("pi", "nft", "add", "element", "inet", "presence_appliance", "netatmo_v4",
             f"{{ {NETATMO} }}")  # fmt: skip
    assert fwlab.probe("nord", "tcp", NETATMO, 443) == f"from {PI_LAN}"
    assert fwlab.counters()["cam_nord_cloud"] >= 1
    blocked("nord", "tcp", WAN, 443, "cam_nord_drop_internet")
    blocked("nord", "tcp", NETATMO, 80, "cam_nord_drop_internet")
    blocked("sued", "tcp", NETATMO, 443, "cam_sued_drop_internet")

    # A device not in the inventory: DHCP and DNS, nothing else.
    assert fwlab.probe("stranger", "udp", PI_CAM, 53) == f"from {STRANGER}"
    blocked("stranger", "tcp", PI_CAM, 22, "unknown_drop_pi")
    blocked("stranger", "udp", WAN, 4500, "unknown_drop_fwd")

    # home network -> cameras: nothing, except the camera's HTTP port from an admin source.
    blocked("lan", "tcp", NORD, 80, "lan_drop_cameras")
    assert fwlab.probe("lan", "tcp", NORD, 80, source=ADMIN) == f"from {ADMIN}"
    # home network -> Pi: HTTP, HTTPS, ping, SSH from firewall.admin_sources; nothing else.
    for port in (80, 443):
        assert fwlab.probe("lan", "tcp", PI_LAN, port) == f"from {LAN}", port
    assert fwlab.probe("lan", "tcp", PI_LAN, 22, source=ADMIN) == f"from {ADMIN}"
    blocked("lan", "tcp", PI_LAN, 22, "lan_drop_pi")
    assert fwlab.ping("lan", PI_LAN)
    blocked("lan", "tcp", PI_LAN, 8080, "lan_drop_pi")
    blocked("lan", "udp", PI_LAN, 9999, "lan_drop_pi")
    # A banned address (fail2ban's set) loses the web, nothing else.
    fwlab.sh("pi", "nft", "add", "element", "inet", "presence_appliance", "login_ban_v4",
             f"{{ {LAN} timeout 60s }}")  # fmt: skip
    assert fwlab.probe("lan", "tcp", PI_LAN, 443, wait=DROP_WAIT) == ""
    assert fwlab.probe("lan", "tcp", PI_LAN, 443, source=ADMIN) == f"from {ADMIN}"

    # Every drop of a camera was logged with its name, kind and destination (NFLOG -> ulogd2).
    log = tmp_path / "log" / "fw.json"
    deadline = time.monotonic() + 10
    entries: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        entries = [json.loads(line) for line in text.splitlines() if line.strip()]
        if any("kind=ntp" in e.get("oob.prefix", "") for e in entries):
            break
        time.sleep(0.2)
    prefixes = {e["oob.prefix"] for e in entries}
    for kind in KINDS:
        assert f"pa cam=nord kind={kind} " in prefixes, (kind, sorted(prefixes))
    lan_drop = next(e for e in entries if e["oob.prefix"] == "pa cam=sued kind=lan ")
    assert lan_drop["src_ip"] == SUED and lan_drop["dest_ip"] == LAN

    # The helper's view (what `presence-appliance firewall` shows), from the same ruleset.
    helper = out / "usr/local/sbin/presence-firewall"
    view = json.loads(fwlab.sh("pi", sys.executable, str(helper), "show", "--limit", "3").stdout)
    cams = {c["name"]: c for c in view["cameras"]}
    assert cams["nord"]["cloud"] == "allow" and cams["sued"]["cloud"] == "block"
    assert cams["nord"]["vpn"]["packets"] >= 2 and cams["sued"]["vpn"]["packets"] == 0
    assert all(cams["sued"]["drops"][k] >= 1 for k in ("pi", "lan", "internet", "ntp"))
    assert cams["nord"]["blocked_24h"] == sum(cams["nord"]["drops"].values())
    recent = cams["sued"]["recent"]
    assert 1 <= len(recent) <= 3
    assert {"time", "kind", "destination", "protocol", "port"} <= set(recent[0])
    assert view["tunnel"] is None  # no remote_access: no tunnel rows, nothing to show


@pytest.mark.parametrize(
    ("firewall", "path", "message"),
    [
        ({"admin_sources": ["10.0.0.300/32"]}, "firewall.admin_sources[0]", "not an address"),
        ({"admin_sources": ["10.0.0.1/24"]}, "firewall.admin_sources[0]", "host bits set"),
        ({"admin_sources": "10.0.0.0/8"}, "firewall.admin_sources", "must be a list"),
        ({"cloud_domains": ["netatmo.net\n"]}, "firewall.cloud_domains[0]", "control character"),
        ({"cloud_domains": ["net/atmo"]}, "firewall.cloud_domains[0]", "is not a domain"),
        ({"cloud_domains": []}, "firewall.cloud_domains", "at least one"),
        ({"admin_source": []}, "firewall.admin_source", "unknown key"),
    ],
)
def test_schema_names_a_bad_firewall_setting(firewall: Any, path: str, message: str) -> None:
    from appliance.schema import validate_appliance

    variables = load_scenario("ap_isolate")
    variables["firewall"] = firewall
    problems = [p for p in validate_appliance("pi", variables) if p.path == path]
    assert problems and message in problems[0].message, validate_appliance("pi", variables)


def test_schema_accepts_admin_sources_of_both_families() -> None:
    from appliance.schema import errors, validate_appliance

    variables = load_scenario("ap_isolate")
    variables["firewall"] = {"admin_sources": ["192.168.1.10/32", "fd00::/64"]}
    assert not errors(validate_appliance("pi", variables))


def _helper(tmp_path: Path) -> Any:
    """The rendered helper script, imported as a module (its pure functions)."""
    import importlib.machinery
    import importlib.util

    out = render_scenario("ap_isolate", tmp_path, roles=("firewall",))
    path = out / "usr/local/sbin/presence-firewall"
    loader = importlib.machinery.SourceFileLoader("presence_firewall", str(path))
    spec = importlib.util.spec_from_loader("presence_firewall", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_an_apply_carries_counters_and_outside_filled_sets_over(tmp_path: Path) -> None:
    helper = _helper(tmp_path)
    candidate = (tmp_path / RULESET).read_text()
    live = [
        {"counter": {"name": "cam_nord_drop_lan", "packets": 7, "bytes": 420}},
        {"counter": {"name": "cam_gone_drop_lan", "packets": 3, "bytes": 9}},
        {"set": {"name": "netatmo_v4", "elem": [{"elem": {"val": "192.0.2.7", "expires": 86000}}]}},
        {"set": {"name": "login_ban_v4", "elem": [{"elem": {"val": "192.0.2.9", "expires": 30}}]}},
        {"set": {"name": "private_v4", "elem": [{"prefix": {"addr": "10.0.0.0", "len": 8}}]}},
    ]
    text = helper.transaction(candidate, live)
    assert "counter cam_nord_drop_lan { packets 7 bytes 420 }" in text
    assert "counter cam_sued_drop_lan { packets 0 bytes 0 }" in text
    assert "cam_gone" not in text
    assert "add element inet presence_appliance netatmo_v4 { 192.0.2.7 timeout 86000s }" in text
    assert "add element inet presence_appliance login_ban_v4 { 192.0.2.9 timeout 30s }" in text
    assert "private_v4 {" not in text.split("}\n", 1)[-1].split("add element")[-1]
    result = nft_check_text(text, tmp_path)
    assert result.returncode == 0, result.stderr


def nft_check_text(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "transaction.nft"
    path.write_text(text)
    return nft_check(path)


def test_blocked_in_24h_survives_a_counter_reset_and_forgets_old_drops(tmp_path: Path) -> None:
    helper = _helper(tmp_path)
    now = 200_000
    samples = [
        [now - 90_000, {"cam_nord": 100}],  # older than a day: not counted
        [now - 80_000, {"cam_nord": 150}],
        [now - 600, {"cam_nord": 170}],
        [now - 300, {"cam_nord": 5}],  # a reboot: counters restart from zero
        [now, {"cam_nord": 9, "cam_sued": 4}],  # sued is new: counted from zero
    ]
    assert helper.blocked_last_day(samples, now) == {"cam_nord": 20 + 5 + 4, "cam_sued": 4}


def test_samples_stay_five_minutes_apart_with_the_newest_last(tmp_path: Path) -> None:
    helper = _helper(tmp_path)
    helper.cameras = lambda: [{"id": "cam_nord"}]
    samples: list[Any] = []
    for minute in range(12):
        values = {"cam_nord_drop_lan": (minute, 0)}
        samples = helper.sample(values, samples, 1000 + minute * 60)
    times = [s[0] for s in samples]
    assert times[-1] == 1000 + 11 * 60 and samples[-1][1] == {"cam_nord": 11}
    assert all(b - a >= 300 for a, b in itertools.pairwise(times[:-1])), times
    assert helper.blocked_last_day(samples, times[-1]) == {"cam_nord": 11}


@pytest.mark.netns
def test_vlan_per_camera_routed_traffic_between_vlans_is_dropped(
    netns: Netns, tmp_path: Path
) -> None:
    """vlan_per_camera: each camera on its own bridge (brvlan<vid>, the Pi's address as /32 and a
    route to the camera), so camera-to-camera traffic is routed by the Pi and meets the firewall."""
    variables = _policy_inventory(tmp_path)
    variables["wifi"]["isolation"] = "vlan_per_camera"
    inventory = write_inventory(variables, tmp_path / "inventory.yml")
    out = render_inventory(inventory, tmp_path / "out", roles=("firewall",))
    lab = FirewallLab(netns, tmp_path)
    pi = lab.add("pi")
    lab.sh("pi", "ip", "link", "add", "wlan0", "type", "bridge")
    lab.sh("pi", "ip", "link", "set", "wlan0", "up")
    lab.sh("pi", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    for role, addr, mac, vid in (
        ("nord", NORD, "70:ee:50:00:00:01", 111),
        ("sued", SUED, "70:ee:50:00:00:02", 112),
    ):
        lab.add(role)
        bridge = f"brvlan{vid}"
        lab.sh("pi", "ip", "link", "add", bridge, "type", "bridge")
        lab.netns.veth(pi, f"wlan0.{vid}", lab.ns[role], "wlan0")
        lab.sh("pi", "ip", "link", "set", f"wlan0.{vid}", "master", bridge)
        lab.sh("pi", "ip", "link", "set", bridge, "up")
        lab.sh("pi", "ip", "addr", "add", f"{PI_CAM}/32", "dev", bridge)
        lab.sh("pi", "ip", "route", "add", f"{addr}/32", "dev", bridge)
        lab.sh(role, "ip", "link", "set", "wlan0", "down")
        lab.sh(role, "ip", "link", "set", "wlan0", "address", mac)
        lab.sh(role, "ip", "link", "set", "wlan0", "up")
        lab.sh(role, "ip", "addr", "add", f"{addr}/24", "dev", "wlan0")
        lab.sh(role, "ip", "route", "add", f"{PI_CAM}/32", "dev", "wlan0")
        lab.sh(role, "ip", "route", "replace", "10.203.192.0/24", "via", PI_CAM)
        lab.listen(role, tcp=[80], udp=[])
    lab.listen("pi", tcp=[22], udp=[53])
    # Before the firewall the Pi routes between the VLANs: the probe below is meaningful.
    assert lab.probe("nord", "tcp", SUED, 80) == f"from {NORD}"
    lab.sh("pi", "nft", "-f", str(out / RULESET))
    assert lab.probe("nord", "udp", PI_CAM, 53) == f"from {NORD}"
    before = lab.counters()
    assert lab.probe("nord", "tcp", SUED, 80, wait=DROP_WAIT) == ""
    assert lab.probe("sued", "tcp", NORD, 80, wait=DROP_WAIT) == ""
    assert lab.probe("sued", "tcp", PI_CAM, 22, wait=DROP_WAIT) == ""
    after = lab.counters()
    assert after["cam_nord_drop_camera"] > before["cam_nord_drop_camera"]
    assert after["cam_sued_drop_camera"] > before["cam_sued_drop_camera"]
    assert after["cam_sued_drop_pi"] > before["cam_sued_drop_pi"]


def test_report_rotates_the_log_and_writes_the_dashboard_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper = _helper(tmp_path / "render")
    log, web = tmp_path / "fw.json", tmp_path / "www"
    web.mkdir()
    log.write_text('{"oob.prefix": "pa cam=nord kind=lan "}\n' * 20)
    calls: list[list[str]] = []
    helper.LOG_FILE, helper.LOG_MAX_BYTES = str(log), 100
    helper.STATE_DIR, helper.WEB_SUMMARY = str(tmp_path / "state"), str(web / "firewall.json")
    helper.cameras = lambda: [
        {
            "id": "cam_nord",
            "name": "nord",
            "cloud": "allow",
            "ip": "10.0.0.2",
            "mac": "70:ee:50:0:0:1",
        }
    ]
    helper.live = lambda: [{"counter": {"name": "cam_nord_drop_lan", "packets": 3, "bytes": 1}}]
    monkeypatch.setattr(helper.subprocess, "run", lambda argv, **kw: calls.append(argv))
    helper.cmd_report(None)
    assert (tmp_path / "fw.json.1").exists() and not log.exists()
    assert ["systemctl", "kill", "--signal=HUP", "ulogd2.service"] in calls
    summary = json.loads((web / "firewall.json").read_text())
    assert summary["cameras"] == {"nord": {"cloud": "allow", "blocked_24h": 3}}
    assert (web / "firewall.json").stat().st_mode & 0o777 == 0o644
    # A small log is left alone.
    log.write_text("{}\n")
    calls.clear()
    helper.cmd_report(None)
    assert log.exists() and not calls


def test_ftp_is_opened_only_with_recordings_and_only_for_recording_cameras(
    tmp_path: Path,
) -> None:
    plain = render_scenario("ap_isolate", tmp_path / "plain", roles=("firewall",)) / RULESET
    assert "tcp dport { 21" not in plain.read_text()
    variables = load_scenario("ap_isolate")
    variables["recordings"] = {"ftp": {"passive_ports": [40000, 40009]}}
    variables["cameras"][1]["recordings"] = True
    variables["cameras"][1]["ftp_password"] = "sued-ftp-Secret-2"
    out = _render_variant(tmp_path, "rec", variables)
    assert nft_check(out / RULESET).returncode == 0
    rows = [
        line.strip() for line in (out / RULESET).read_text().splitlines() if "dport { 21" in line
    ]
    assert rows == [
        "ip daddr 10.203.64.1 tcp dport { 21, 40000-40009 } ether saddr . ip saddr"
        " { 70:ee:50:00:00:02 . 10.203.64.12 } accept"
    ]
    # recordings: true without the appliance's `recordings` (refused by validate) opens nothing.
    del variables["recordings"]
    bare = _render_variant(tmp_path, "bare", variables)
    assert "dport { 21" not in (bare / RULESET).read_text()
