"""The firewall on the booted lab Pi, provisioned by the real playbook: two cameras, cam1
`cloud: block` and cam2 `cloud: allow`; every bullet of issue 10's "Tests that show it"."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.lab import pi as lab_pi
from appliance.lab.handle import Lab
from appliance.lab.plan import LAN_GATEWAY, WAN_ADDR, WAN_NTP, WAN_VPN
from appliance.lab.state import LabState
from tests.browser import chromium, goto

pytestmark = pytest.mark.lab

PROBE = Path(__file__).resolve().parents[1] / "roles" / "fw_probe.py"
TABLE = "presence_appliance"
STATE_DIR = "/var/lib/presence-appliance/firewall"  # the role's firewall_state_dir


def _recap_changed(result: subprocess.CompletedProcess[str]) -> int:
    counts = re.findall(r"^\s+\S+\s+\S+\s+ok=\d+ changed=(\d+)", result.stdout, re.M)
    assert counts, result.stdout[-3000:] + result.stderr[-2000:]
    return sum(int(n) for n in counts)


def write_inventory(lab: Lab, name: str, **group_vars: Any) -> Path:
    """The lab's inventory with cam2 `cloud: allow` (and GROUP_VARS), next to the original
    (same controller directory: the pinned certificate stays valid)."""
    data = yaml.safe_load(lab.inventory_path.read_text())
    group = data["all"]["children"]["appliances"]["vars"]
    group["cameras"][0]["cloud"] = "block"
    group["cameras"][1]["cloud"] = "allow"
    group.update(group_vars)
    path = lab.root / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)
    return path


def install(lab: Lab, inventory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return lab.cli("install", "-i", str(inventory), "--no-check", *extra, timeout=900)


def firewall_only(lab: Lab, inventory: Path) -> subprocess.CompletedProcess[str]:
    """Only the firewall role (a quicker run where no other role's input changed)."""
    return install(lab, inventory, "--tags", "firewall")


def probe(lab: Lab, ns: str, kind: str, host: str, port: int) -> str:
    """The answer through the firewall ('' = dropped), bounded by 2 s."""
    argv = [sys.executable, str(PROBE), "probe", kind, host, str(port), "--timeout", "2"]
    result = lab.run_in(ns, *argv, check=False, timeout=20)
    return result.stdout.strip() if result.returncode == 0 else ""


def counters(lab: Lab) -> dict[str, int]:
    out = lab.pi_exec("nft", "-j", "list", "counters", "table", "inet", TABLE).stdout
    return {
        i["counter"]["name"]: i["counter"]["packets"]
        for i in json.loads(out)["nftables"]
        if "counter" in i
    }


def wait_for(what: str, condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def fw(lab_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The lab provisioned with cam1 block, cam2 allow; a resolver for netatmo.net in pa-lan
    (the Pi's upstream DNS) answering the VPN stand-in's address."""
    lab = lab_session.ensure_up()
    resolver = subprocess.Popen(
        ["ip", "netns", "exec", "pa-lan", "dnsmasq", "--keep-in-foreground", "--no-resolv",
         "--no-hosts", "--conf-file=/dev/null", f"--listen-address={LAN_GATEWAY}",
         "--bind-interfaces", f"--address=/netatmo.net/{WAN_VPN}",
         f"--pid-file={tmp_path_factory.mktemp('resolver') / 'dnsmasq.pid'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        result = install(lab, write_inventory(lab, "inventory-firewall.yml"))
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        for cam in ("cam1", "cam2"):
            lab.wait_camera_lease(cam, timeout=60)
        yield lab
    finally:
        os.killpg(resolver.pid, signal.SIGTERM)
        resolver.wait(10)


def readline(proc: subprocess.Popen[str], timeout: float = 10) -> str:
    """One line of PROC's output, waiting at most TIMEOUT seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output within {timeout:.0f} s"
    return proc.stdout.readline().strip()


def cam_ip(lab: Lab, name: str) -> str:
    return lab.plan.camera(name).ip


def test_camera_gets_dhcp_dns_ntp_from_the_pi_but_not_ssh_or_https(fw: Lab) -> None:
    pi = fw.plan.pi("pi")
    gateway = pi.camera_gateway
    lease = fw.wait_camera_lease("cam1")
    assert lease["ip"] == cam_ip(fw, "cam1") and lease["ntpsrv"] == [gateway]
    dns = fw.run_in(
        "cam-cam1", sys.executable, str(PROBE), "dns", gateway, "cam2.cameras.home.arpa"
    )
    assert dns.stdout.split() == [cam_ip(fw, "cam2")], dns.stdout
    ntp = fw.run_in("cam-cam1", "ntpdig", "-t", "3", gateway, check=False, timeout=20)
    assert ntp.returncode == 0, ntp.stdout + ntp.stderr
    before = counters(fw)["cam_cam1_drop_pi"]
    for port in (22, 443):
        assert probe(fw, "cam-cam1", "tcp", gateway, port) == ""
        assert probe(fw, "cam-cam1", "tcp", pi.address, port) == ""
    assert counters(fw)["cam_cam1_drop_pi"] >= before + 4


def test_camera_to_home_network_is_dropped_and_counted(fw: Lab) -> None:
    for cam in ("cam1", "cam2"):
        before = counters(fw)[f"cam_{cam}_drop_lan"]
        assert probe(fw, f"cam-{cam}", "tcp", LAN_GATEWAY, 8080) == ""
        assert probe(fw, f"cam-{cam}", "udp", LAN_GATEWAY, 9999) == ""
        assert counters(fw)[f"cam_{cam}_drop_lan"] >= before + 2


def test_vpn_reaches_the_internet_for_the_allowed_camera_only(fw: Lab) -> None:
    sent = "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); " + "; ".join(
        f"s.sendto(b'x', ('{WAN_VPN}', {port}))" for port in (500, 4500)
    )
    before, vpn_before = fw.counters(), counters(fw)["cam_cam2_vpn"]
    fw.run_in("cam-cam1", sys.executable, "-c", sent)  # cloud: block
    fw.run_in("cam-cam2", sys.executable, "-c", sent)  # cloud: allow
    wait_for("cam2's VPN datagrams at pa-wan", lambda: fw.counters()["vpn"].get(4500, 0)
             > before["vpn"].get(4500, 0) and fw.counters()["vpn"].get(500, 0)
             > before["vpn"].get(500, 0), 10)  # fmt: skip
    # cam1 sent first on the same path: had its datagrams passed, they would be counted too.
    after = fw.counters()
    for port in (500, 4500):
        assert after["vpn"][port] == before["vpn"].get(port, 0) + 1, (port, after["vpn"])
    assert counters(fw)["cam_cam2_vpn"] >= vpn_before + 2
    # Source NAT: pa-wan sees the Pi's home-network address, not the camera's.
    listener = subprocess.Popen(
        ["ip", "netns", "exec", "pa-wan", sys.executable, str(PROBE), "listen", "--address",
         WAN_ADDR, "--udp", "4500"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert readline(listener) == "listening"
        assert probe(fw, "cam-cam2", "udp", WAN_ADDR, 4500) == f"from {fw.plan.pi('pi').address}"
        assert probe(fw, "cam-cam1", "udp", WAN_ADDR, 4500) == ""
    finally:
        os.killpg(listener.pid, signal.SIGTERM)
        listener.wait(10)


def test_https_only_to_netatmo_addresses_and_ntp_elsewhere_dropped(fw: Lab) -> None:
    sink = f"{WAN_VPN}/tcp/443"
    seen = fw.counters()["by_destination"].get(sink, 0)
    drops = counters(fw)
    # Before a lookup the address is unknown: dropped for both cameras.
    assert probe(fw, "cam-cam2", "tcp", WAN_VPN, 443) == ""
    assert probe(fw, "cam-cam2", "tcp", WAN_ADDR, 443) == ""
    assert fw.counters()["by_destination"].get(sink, 0) == seen
    # The camera asks the Pi for netatmo.net: dnsmasq puts the answer into the set.
    gateway = fw.plan.pi("pi").camera_gateway
    dns = fw.run_in("cam-cam2", sys.executable, str(PROBE), "dns", gateway, "api.netatmo.net")
    assert dns.stdout.split() == [WAN_VPN], dns.stdout
    elements = fw.pi_exec("nft", "list", "set", "inet", TABLE, "netatmo_v4").stdout
    assert WAN_VPN in elements, elements
    probe(fw, "cam-cam2", "tcp", WAN_VPN, 443)  # nothing listens there: pa-wan's sink counts it
    wait_for(
        "cam2's HTTPS at pa-wan", lambda: fw.counters()["by_destination"].get(sink, 0) > seen, 5
    )
    reached = fw.counters()["by_destination"][sink]
    assert probe(fw, "cam-cam1", "tcp", WAN_VPN, 443) == ""  # cloud: block
    assert probe(fw, "cam-cam2", "tcp", WAN_ADDR, 443) == ""  # not Netatmo's
    ntp = fw.run_in("cam-cam2", "ntpdig", "-t", "2", WAN_NTP, check=False, timeout=20)
    assert ntp.returncode != 0
    after = counters(fw)
    assert fw.counters()["by_destination"][sink] == reached
    assert after["cam_cam1_drop_internet"] > drops["cam_cam1_drop_internet"]
    assert after["cam_cam2_drop_internet"] >= drops["cam_cam2_drop_internet"] + 3
    assert after["cam_cam2_drop_ntp"] > drops["cam_cam2_drop_ntp"]
    assert after["cam_cam2_cloud"] > drops["cam_cam2_cloud"]


def test_home_network_reaches_the_pi_but_not_the_cameras(fw: Lab) -> None:
    pi = fw.plan.pi("pi")
    route = fw.run_in("lan", "ip", "route", "get", cam_ip(fw, "cam1")).stdout
    assert f"via {pi.address}" in route  # routable: only the firewall stands in the way
    before = counters(fw)["lan_drop_cameras"]
    assert probe(fw, "lan", "tcp", cam_ip(fw, "cam1"), 80) == ""
    assert fw.run_in(
        "lan", "ping", "-c", "1", "-W", "1", cam_ip(fw, "cam2"), check=False
    ).returncode
    assert counters(fw)["lan_drop_cameras"] >= before + 2
    assert probe(fw, "lan", "tcp", pi.address, 22).startswith("SSH-2.0-")
    https = fw.run_in("lan", "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5",
                      f"https://{pi.address}/", check=False)  # fmt: skip
    assert https.stdout == "401"


def test_drops_are_logged_with_the_camera_name_by_ulogd(fw: Lab) -> None:
    probe(fw, "cam-cam1", "udp", LAN_GATEWAY, 9999)
    log = "/var/log/ulog/presence-firewall.json"

    def logged() -> list[dict[str, Any]]:
        text = fw.pi_exec("cat", log, check=False).stdout
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    wait_for("a cam1 lan drop in the JSON log", lambda: any(
        e.get("oob.prefix") == "pa cam=cam1 kind=lan " for e in logged()), 10)  # fmt: skip
    entry = next(e for e in logged() if e.get("oob.prefix") == "pa cam=cam1 kind=lan ")
    assert entry["src_ip"] == cam_ip(fw, "cam1") and entry["dest_ip"] == LAN_GATEWAY


def test_block_to_allow_changes_that_camera_only_and_keeps_ssh_sessions(fw: Lab) -> None:
    units = ("dnsmasq", "hostapd", "nginx", "chrony")

    def started() -> dict[str, str]:
        return {
            u: fw.pi_exec("systemctl", "show", "-P", "ExecMainStartTimestampMonotonic", u).stdout
            for u in units
        }

    def table() -> list[str]:
        text = fw.pi_exec("nft", "list", "table", "inet", TABLE).stdout
        # counters move on their own; elements of the dynamic sets too
        return [re.sub(r"packets \d+ bytes \d+", "", line) for line in text.splitlines()
                if "expires" not in line]  # fmt: skip

    pi = fw.plan.pi("pi")
    session = subprocess.Popen(
        ["ip", "netns", "exec", "pa-lan", "ssh", "-i", str(fw.ssh_key), "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", f"pi@{pi.address}",
         "while read line; do echo got-$line; done"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert session.stdin and session.stdout
        session.stdin.write("before\n")
        session.stdin.flush()
        assert readline(session, 20) == "got-before"
        units_before, table_before, drops_before = started(), table(), counters(fw)
        # cam1: block -> allow
        inventory = write_inventory(fw, "inventory-firewall2.yml")
        data = yaml.safe_load(inventory.read_text())
        data["all"]["children"]["appliances"]["vars"]["cameras"][0]["cloud"] = "allow"
        inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        result = install(fw, inventory)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert started() == units_before, "a service other than the firewall restarted"
        changed = [line for line in table() if line not in table_before]
        assert changed and all("cam1" in line or line.strip().startswith(("oifname", "}"))
                               for line in changed), changed  # fmt: skip
        assert counters(fw)["cam_cam2_drop_lan"] >= drops_before["cam_cam2_drop_lan"]  # kept
        session.stdin.write("after\n")
        session.stdin.flush()
        assert readline(session) == "got-after"
        again = install(fw, inventory)
        assert again.returncode == 0 and _recap_changed(again) == 0, again.stdout[-3000:]
    finally:
        os.killpg(session.pid, signal.SIGTERM)
        session.wait(10)
        # back to cam1 block for the other tests
        assert firewall_only(fw, write_inventory(fw, "inventory-firewall.yml")).returncode == 0


def test_a_lockout_ruleset_is_reverted_by_the_pi_itself(fw: Lab) -> None:
    pi = fw.plan.pi("pi")
    locked = write_inventory(fw, "inventory-lockout.yml", firewall_test_block_ssh=True)
    result = firewall_only(fw, locked)
    assert result.returncode != 0, "an apply that locks SSH out was confirmed"
    assert "Confirm the new ruleset" in result.stdout, result.stdout[-3000:]

    def ssh_open() -> bool:
        return probe(fw, "lan", "tcp", pi.address, 22).startswith("SSH-2.0-")

    # The Pi undoes it after its 60 s timer, without any help from the controller.
    wait_for("SSH back after the Pi's revert", ssh_open, 120)
    live = fw.pi_exec("nft", "list", "table", "inet", TABLE).stdout
    assert "ct state new drop" not in live
    assert (
        "reverted" in fw.pi_exec("cat", "/var/lib/presence-appliance/firewall/reverted.log").stdout
    )
    again = firewall_only(fw, write_inventory(fw, "inventory-firewall.yml"))
    assert again.returncode == 0, again.stdout[-3000:]


def test_firewall_command_shows_policy_vpn_drops_and_latest_attempts(fw: Lab) -> None:
    probe(fw, "cam-cam1", "tcp", LAN_GATEWAY, 8080)
    log = "/var/log/ulog/presence-firewall.json"
    wait_for("the drop in ulogd's log", lambda: '"dest_port": 8080' in fw.pi_exec(
        "cat", log, check=False).stdout, 10)  # fmt: skip
    result = fw.cli("firewall", "-i", str(fw.root / "inventory-firewall.yml"), "--json",
                    "--limit", "50", timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (view,) = json.loads(result.stdout)["appliances"]
    assert view["loaded"] is True and view["error"] is None
    cams = {c["name"]: c for c in view["cameras"]}
    assert cams["cam1"]["cloud"] == "block" and cams["cam2"]["cloud"] == "allow"
    assert cams["cam2"]["vpn"]["packets"] >= 2 and cams["cam1"]["vpn"]["packets"] == 0
    for kind in ("pi", "lan", "internet"):
        assert cams["cam1"]["drops"][kind] >= 1, (kind, cams["cam1"]["drops"])
    assert cams["cam2"]["drops"]["ntp"] >= 1
    kinds = {
        (e["kind"], e["protocol"], e["destination"], e["port"]) for e in cams["cam1"]["recent"]
    }
    assert ("lan", "tcp", LAN_GATEWAY, 8080) in kinds, kinds
    table = fw.cli("firewall", "-i", str(fw.root / "inventory-firewall.yml"), timeout=120)
    assert table.returncode == 0, table.stderr
    assert re.search(r"^lab-pi\s+cam2\s+allow\s+\d+ pkts", table.stdout, re.M), table.stdout
    assert "latest blocked attempts:" in table.stdout and f"{LAN_GATEWAY}:8080" in table.stdout
    secure_ids = [
        c["secure_id"] for c in fw.inventory["all"]["children"]["appliances"]["vars"]["cameras"]
    ]
    assert not any(s in result.stdout + table.stdout for s in secure_ids)


def test_dashboard_tile_shows_cloud_policy_and_blocked_in_24h(fw: Lab, tmp_path: Path) -> None:
    """Debian's chromium on the home network (the host's link into pa-lan) opens the dashboard:
    after the page's JS has run, each tile shows its camera's cloud policy and the count of
    attempts blocked in the last 24 h that the Pi's counters give, and no secret is anywhere in
    the DOM nor in what the page fetched."""
    group = fw.inventory["all"]["children"]["appliances"]["vars"]
    user = group["web"]["users"][0]
    timer = "presence-firewall-report.timer"

    def report() -> int:
        """What the minutely timer runs; returns cam1's drop total as that report read it from
        the Pi's counters (the newest sample it kept)."""
        fw.pi_exec("/usr/local/sbin/presence-firewall", "report")
        samples = json.loads(fw.pi_exec("cat", f"{STATE_DIR}/samples.json").stdout)
        return int(samples[-1][1]["cam_cam1"])

    def tiles(page: Any) -> dict[str, tuple[str, str]]:
        """Per camera: the firewall line's rendered text and its data-blocked, once the JS
        has filled in every tile."""
        line = '[data-role="firewall"]'
        page.wait_for_function(
            f"() => [...document.querySelectorAll('{line}')].every(l => l.dataset.blocked)",
            timeout=15000,
        )
        return page.evaluate(
            f"""() => Object.fromEntries([...document.querySelectorAll('[data-camera]')].map(
                t => [t.dataset.camera, [t.querySelector('{line}').innerText,
                                         t.querySelector('{line}').dataset.blocked]]))"""
        )

    def shown(page: Any) -> dict[str, tuple[str, int]]:
        result = {}
        for name, (text, blocked) in tiles(page).items():
            match = re.fullmatch(r"Cloud: (allow|block) · blocked in 24 h: (\d+)", text)
            assert match, (name, text)
            assert match[2] == blocked, (name, text, blocked)
            result[name] = (match[1], int(match[2]))
        return result

    def texts(responses: list[Any]) -> list[str]:
        """The bodies of the page's text answers (read before the next navigation drops
        them); video segments and images are left out."""
        from playwright.sync_api import Error as BrowserError

        kinds = r"json|html|javascript|css|text"
        found = []
        for r in responses:
            if re.search(kinds, r.headers.get("content-type", "")):
                try:
                    found.append(r.text())
                except BrowserError:
                    # A poll still in flight when the page moved on: the same URL is fetched
                    # (and read) again by the page that follows.
                    continue
        responses.clear()
        return found

    # Only this test's reports write the dashboard's summary while it runs.
    fw.pi_exec("systemctl", "stop", timer, "presence-firewall-report.service")
    try:
        probe(fw, "cam-cam1", "udp", LAN_GATEWAY, 9999)
        first = report()
        with chromium(tmp_path / "profile", login=(user["name"], user["password"])) as context:
            page = context.new_page()
            fetched: list[Any] = []
            page.on("response", lambda response: fetched.append(response))
            goto(page, f"https://{fw.plan.pi('pi').address}/")
            before = shown(page)
            bodies = texts(fetched)
            assert before["cam1"][0] == "block" and before["cam2"][0] == "allow", before
            assert before["cam1"][1] >= 1, before  # cam1's drops in this module
            counted = sum(v for k, v in counters(fw).items() if k.startswith("cam_cam1_drop_"))
            assert probe(fw, "cam-cam1", "udp", LAN_GATEWAY, 9999) == ""
            assert probe(fw, "cam-cam1", "tcp", LAN_GATEWAY, 8080) == ""
            second = report()
            # The report saw the new drops: its total is past what the counters held before.
            assert second > counted >= first, (first, counted, second)
            bodies += texts(fetched)  # the page's polls meanwhile, read before it reloads
            goto(page)
            after = shown(page)
            assert after["cam1"] == ("block", before["cam1"][1] + second - first), after
            assert after["cam2"][0] == "allow", after
            dom = page.content() + page.evaluate("() => document.body.innerText")
            bodies += texts(fetched)
    finally:
        fw.pi_exec("systemctl", "start", timer)
    assert any('"blocked_24h"' in body for body in bodies)  # the page fetched firewall.json
    secrets = [group["wifi"]["passphrase"], *(u["password"] for u in group["web"]["users"])]
    secrets += [c["secure_id"] for c in group["cameras"]]
    secrets += [c["passphrase"] for c in group["cameras"] if c.get("passphrase")]
    for secret in secrets:
        assert secret not in dom
        assert not any(secret in body for body in bodies)


def test_direct_camera_access_only_from_admin_sources(fw: Lab) -> None:
    """`check --direct` (and `camera --direct`) from the home network: refused by default, allowed
    from firewall.admin_sources; the default way through the Pi's proxy works either way."""
    plain = fw.root / "inventory-firewall.yml"

    def check(inventory: Path, *extra: str) -> dict[str, Any]:
        result = fw.cli("check", "-i", str(inventory), "--json", "--timeout", "3", *extra,
                        timeout=180)  # fmt: skip
        return json.loads(result.stdout)

    assert check(plain)["ok"] is True
    assert check(plain, "--direct")["ok"] is False
    admin = write_inventory(
        fw, "inventory-admin.yml", firewall={"admin_sources": [f"{LAN_GATEWAY}/32"]}
    )
    try:
        result = firewall_only(fw, admin)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        report = check(admin, "--direct")
        assert report["ok"] is True and report["direct"] is True, report
    finally:
        assert firewall_only(fw, plain).returncode == 0


# Every long-running service the roles run on the firewall module's Pi (no recordings, no
# WireGuard in its inventory): the ones `doctor` knows, and the web role's login ban.
MANAGED_SERVICES = (
    "hostapd.service",
    "dnsmasq.service",
    "chrony.service",
    "nginx.service",
    "presence-firewall.service",
    "ulogd2.service",
    "fail2ban.service",
)


def _radio(lab: Lab, state: str) -> None:
    """The lab's radio stand-in for a power cycle: every camera's link on the Pi down (radio
    off, the cameras lose their association) or up (they associate again). The Pi's network
    namespace outlives its container, so without this the cameras would never notice the
    reboot, unlike real cameras on a rebooting Pi's Wi-Fi."""
    pi = lab.plan.pi("pi")
    for cam in pi.cameras:
        lab.run_in(pi.netns, "ip", "link", "set", cam.pi_port, state, timeout=10)


def _reboot(lab: Lab) -> float:
    """Reboot the lab Pi: its systemd reboots, nspawn exits; boot it again on the same overlay.
    The cameras lose Wi-Fi while it is down and associate again once hostapd is back. Returns
    the wall-clock time the reboot began (camera lease events carry wall-clock times)."""
    state = LabState.load(lab.root)
    pi = lab.plan.pi("pi")
    old = next(p for p in state.data["processes"] if p["role"] == f"nspawn-{pi.host}")
    began = time.time()
    subprocess.run(["nsenter", "-t", str(lab.pi_leader()), "-a", "systemctl", "reboot"],
                   capture_output=True, timeout=30)  # fmt: skip
    wait_for("nspawn to exit", lambda: not Path(f"/proc/{old['pid']}").exists()
             or "zombie" in Path(f"/proc/{old['pid']}/status").read_text(), 60)  # fmt: skip
    _radio(lab, "down")
    state.data["processes"].remove(old)
    state.save()
    merged = lab_pi.pi_dir(lab.root, pi) / "merged"
    leader = lab_pi.boot(lab.root, pi, merged, state)
    # Bounded below systemd-networkd-wait-online's own 120 s: a boot that waits for the camera
    # interface again fails here.
    lab_pi.wait_booted(leader, timeout=90)
    lab_pi.wait_ssh(pi, lab.ssh_key, "pa-lan", timeout=60)
    hostapd = "hostapd.service"
    wait_for("hostapd after the reboot", lambda: lab.pi_exec(
        "systemctl", "is-active", hostapd, check=False).stdout.strip() == "active", 60)  # fmt: skip
    _radio(lab, "up")
    return began


def _bound_since(lab: Lab, name: str, since: float) -> dict[str, Any] | None:
    """Camera NAME's lease if it was bound (a fresh DHCP exchange) after SINCE, else None."""
    lease = lab.camera_lease(name)
    if lease and lease.get("event") == "bound" and float(lease["time"]) >= since:
        return lease
    return None


def test_reboot_brings_the_ruleset_back_before_hostapd(fw: Lab) -> None:
    """One reboot, every check of issue 12's reboot bullet (and issue 10's ordering): every
    managed service and the firewall come back, every camera joins again and gets its
    reserved lease from the rebooted Pi, and `check` passes."""
    began = _reboot(fw)

    def timestamp(unit: str, prop: str) -> int:
        return int(fw.pi_exec("systemctl", "show", "-P", prop, unit).stdout.strip() or 0)

    loaded = timestamp("presence-firewall.service", "ActiveEnterTimestampMonotonic")
    assert loaded > 0
    for unit in ("hostapd.service", "dnsmasq.service"):
        begun = timestamp(unit, "ExecMainStartTimestampMonotonic")
        assert begun > loaded, f"{unit} started before the firewall was loaded"
    assert "cam_cam1_drop_lan" in fw.pi_exec("nft", "list", "table", "inet", TABLE).stdout
    # The lab Pi has no NetworkManager or dhcpcd: networkd's wait-online ran and found the
    # camera interface configured instead of timing out (a boot stalled 120 s).
    shown = fw.pi_exec("systemctl", "show", "-p", "ActiveState,Result",
                       "systemd-networkd-wait-online.service").stdout  # fmt: skip
    assert dict(line.split("=", 1) for line in shown.split()) == {
        "ActiveState": "active",
        "Result": "success",
    }, shown
    boot = fw.pi_exec("systemd-analyze", "time", check=False).stdout.strip()
    print(f"\n[lab] the Pi rebooted: {boot}", file=sys.stderr)  # for the record (-s)
    fw.wait_camera_lease("cam1", timeout=60)
    assert probe(fw, "cam-cam1", "tcp", LAN_GATEWAY, 8080) == ""
    states = fw.pi_exec("systemctl", "is-active", *MANAGED_SERVICES, check=False).stdout.split()
    assert dict(zip(MANAGED_SERVICES, states, strict=True)) == dict.fromkeys(
        MANAGED_SERVICES, "active"
    ), states
    pi = fw.plan.pi("pi")
    for cam in pi.cameras:
        joined = f"{cam.name} to join the rebooted Pi"
        wait_for(joined, lambda c=cam: _bound_since(fw, c.name, began) is not None, 60)
        lease = _bound_since(fw, cam.name, began)
        assert lease is not None and lease["ip"] == cam.ip, lease
        assert lease["ntpsrv"] == [pi.camera_gateway], lease
    check = fw.cli("check", "-i", str(fw.root / "inventory-firewall.yml"), "--wait", "30")
    assert check.returncode == 0, check.stdout + check.stderr
