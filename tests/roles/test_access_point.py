"""access_point role: rendered hostapd/networkd files pass the real hostapd parse and say what we promise."""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.roles.conftest import (
    REPO,
    hostapd_parse,
    load_scenario,
    render_inventory,
    render_scenario,
    write_inventory,
)

SCENARIOS = ("ap_isolate", "vlan_per_camera", "band5_wpa3")


def _conf(out: Path) -> dict[str, list[str]]:
    """hostapd.conf as key -> values (a key may repeat)."""
    values: dict[str, list[str]] = {}
    for line in (out / "etc/hostapd/hostapd.conf").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_real_hostapd_accepts_rendered_config(scenario: str, tmp_path: Path) -> None:
    out = render_scenario(scenario, tmp_path)
    result = hostapd_parse(out)
    assert result.accepted, result.output


@pytest.mark.parametrize(
    ("line", "replacement", "message"),
    [
        ("wpa_passphrase=", "wpa_passphrase=short", "invalid WPA passphrase length 5"),
        ("hw_mode=", "hw_mode=q", "unknown hw_mode"),
        ("rsn_pairwise=", "rsn_pairwise=WEP", "invalid cipher 'WEP'"),
    ],
)
def test_real_hostapd_rejects_a_broken_value(
    tmp_path: Path, line: str, replacement: str, message: str
) -> None:
    out = render_scenario("vlan_per_camera", tmp_path)
    conf = out / "etc/hostapd/hostapd.conf"
    text = conf.read_text()
    assert line in text
    conf.write_text(re.sub(rf"^{re.escape(line)}.*$", replacement, text, flags=re.M))
    result = hostapd_parse(out)
    assert not result.accepted
    assert "errors found in configuration file" in result.output
    assert message in result.output


def test_real_hostapd_rejects_a_broken_vlan_file(tmp_path: Path) -> None:
    out = render_scenario("vlan_per_camera", tmp_path)
    (out / "etc/hostapd/hostapd.vlan").write_text("* \n")
    result = hostapd_parse(out)
    assert not result.accepted
    assert "failed to read VLAN file" in result.output


def test_wpa2_ccmp_only_country_and_isolation_by_default(tmp_path: Path) -> None:
    conf = _conf(render_scenario("ap_isolate", tmp_path))
    assert conf["wpa"] == ["2"]
    assert conf["rsn_pairwise"] == ["CCMP"]
    assert conf["wpa_key_mgmt"] == ["WPA-PSK"]
    assert "wpa_pairwise" not in conf
    assert "ieee80211w" not in conf
    assert not [key for key, values in conf.items() if any("TKIP" in v for v in values)]
    assert conf["country_code"] == ["DE"]
    assert conf["ieee80211d"] == ["1"]
    assert conf["hw_mode"] == ["g"]
    assert conf["channel"] == ["6"]
    assert conf["ap_isolate"] == ["1"]
    assert conf["interface"] == ["pan-wl0"]
    assert "dynamic_vlan" not in conf
    assert "wpa_psk_file" not in conf
    assert not (tmp_path / "etc/hostapd/hostapd.wpa_psk").exists()
    assert not list((tmp_path / "etc/systemd/network").glob("61-presence-vlan-*"))


def test_band5_dfs_channel_and_wpa3(tmp_path: Path) -> None:
    conf = _conf(render_scenario("band5_wpa3", tmp_path))
    assert conf["hw_mode"] == ["a"]
    assert conf["channel"] == ["100"]
    assert conf["ieee80211h"] == ["1"]  # channel 100 is a DFS channel
    assert conf["wpa_key_mgmt"] == ["WPA-PSK SAE"]
    assert conf["ieee80211w"] == ["1"]
    assert conf["interface"] == ["wlan0"]


def test_raw_psk_goes_in_as_wpa_psk(tmp_path: Path) -> None:
    variables = load_scenario("ap_isolate")
    variables["wifi"]["passphrase"] = "AB" * 32
    out = render_inventory(write_inventory(variables, tmp_path / "inv.yml"), tmp_path / "out")
    conf = _conf(out)
    assert conf["wpa_psk"] == ["ab" * 32]
    assert "wpa_passphrase" not in conf
    assert hostapd_parse(out).accepted


def test_vlan_per_camera_psk_file_vlan_ids_and_routes(tmp_path: Path) -> None:
    out = render_scenario("vlan_per_camera", tmp_path)
    conf = _conf(out)
    assert conf["dynamic_vlan"] == ["1"]
    assert conf["wpa_psk_file"] == ["/etc/hostapd/hostapd.wpa_psk"]
    assert conf["vlan_file"] == ["/etc/hostapd/hostapd.vlan"]
    assert conf["vlan_bridge"] == ["brvlan"]
    psk_lines = [
        line
        for line in (out / "etc/hostapd/hostapd.wpa_psk").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    # nord: derived 100 + host number 11; sued: explicit vlan_id and its own passphrase.
    assert psk_lines == [
        "vlanid=111 70:ee:50:00:00:01 correct-horse-battery",
        "vlanid=42 70:ee:50:00:00:02 sued-only-passphrase",
    ]
    assert (out / "etc/hostapd/hostapd.wpa_psk").stat().st_mode & 0o777 == 0o600
    assert (out / "etc/hostapd/hostapd.conf").stat().st_mode & 0o777 == 0o600
    vlan_lines = [
        line
        for line in (out / "etc/hostapd/hostapd.vlan").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert vlan_lines == ["* pan-wl0.#"]
    nord = (out / "etc/systemd/network/61-presence-vlan-nord.network").read_text()
    assert "Name=brvlan111" in nord
    assert "Address=10.203.64.1/32" in nord
    assert "Destination=10.203.64.11/32" in nord
    sued = (out / "etc/systemd/network/61-presence-vlan-sued.network").read_text()
    assert "Name=brvlan42" in sued
    assert "Destination=10.203.64.12/32" in sued
    nm = (out / "etc/NetworkManager/conf.d/60-presence-appliance.conf").read_text()
    assert (
        "unmanaged-devices+=interface-name:pan-wl0;interface-name:pan-wl0.*;interface-name:brvlan*"
        in nm
    )


def test_camera_list_edit_leaves_hostapd_conf_untouched(tmp_path: Path) -> None:
    """A hostapd restart drops every camera: a camera edit must not change its restart files."""
    before = render_scenario("vlan_per_camera", tmp_path / "before")
    variables = load_scenario("vlan_per_camera")
    edited = copy.deepcopy(variables)
    edited["cameras"][0]["mac"] = "70:ee:50:00:00:99"
    edited["cameras"].append(
        {
            "name": "west",
            "mac": "70:ee:50:00:00:03",
            "ip": "10.203.64.13",
            "secure_id": "0123456789abcdef0123456789abcdef",
            "cloud": "block",
        }
    )
    after = render_inventory(write_inventory(edited, tmp_path / "inv.yml"), tmp_path / "after")
    for restart_file in (
        "etc/hostapd/hostapd.conf",
        "etc/hostapd/hostapd.vlan",
        "etc/default/hostapd",
    ):
        assert (before / restart_file).read_text() == (after / restart_file).read_text(), (
            restart_file
        )
    assert (before / "etc/hostapd/hostapd.wpa_psk").read_text() != (
        after / "etc/hostapd/hostapd.wpa_psk"
    ).read_text()
    assert "70:ee:50:00:00:99" in (after / "etc/hostapd/hostapd.wpa_psk").read_text()
    assert (after / "etc/systemd/network/61-presence-vlan-west.network").exists()


def test_camera_interface_network_file_touches_only_the_camera_interface(tmp_path: Path) -> None:
    out = render_scenario("ap_isolate", tmp_path)
    files = sorted(p.name for p in (out / "etc/systemd/network").iterdir())
    assert files == ["60-presence-camera.network"]
    text = (out / "etc/systemd/network/60-presence-camera.network").read_text()
    assert re.findall(r"^Name=(.*)$", text, flags=re.M) == ["pan-wl0"]
    assert "Address=10.203.64.1/24" in text
    assert re.findall(r"^RequiredForOnline=(.*)$", text, flags=re.M) == ["no-carrier"]


# systemd-networkd and its wait-online, run for real in a namespace of this test (names fwt-,
# addresses 10.203.192.0/20) with a private /run/systemd and the rendered .network files as
# /etc/systemd/network. networkd waits for udev unless /sys is read-only (its rule for
# containers), and no udev runs here: /sys is remounted read-only in the private mount space.
NETWORKD_SCRIPT = """
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/systemd/netif/links /run/systemd/netif/leases /run/systemd/netif/lldp
chown -R systemd-network:systemd-network /run/systemd/netif
mount -o remount,bind,ro /sys
mount --bind "$1" /etc/systemd/network
/lib/systemd/systemd-networkd &
networkd=$!
/lib/systemd/systemd-networkd-wait-online --timeout="$2"
online=$?
ip -o addr show dev "$3"
ip -o link show dev "$3"
kill "$networkd"
wait "$networkd"
exit "$online"
"""


def _wait_online(network_dir: Path, interface: str, timeout: int) -> tuple[bool, str]:
    """Boot-like: networkd configures the links, wait-online decides (bounded by TIMEOUT);
    True when wait-online found the network online, and what `ip` shows of INTERFACE."""
    ns = f"fwt-wo-{uuid.uuid4().hex[:5]}"
    peer = f"fwt{ns[-5:]}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
    proc = None
    try:
        # The camera interface with its far end down: no carrier, as a Wi-Fi interface has
        # until hostapd brings the radio up.
        in_ns = ["ip", "-n", ns, "link"]
        subprocess.run([*in_ns, "add", interface, "type", "veth", "peer", "name", peer],
                       check=True, timeout=10)  # fmt: skip
        subprocess.run([*in_ns, "set", "lo", "up"], check=True, timeout=10)
        argv = ["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private",
                "sh", "-c", NETWORKD_SCRIPT, "networkd", str(network_dir), str(timeout),
                interface]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)  # fmt: skip
        output, _ = proc.communicate(timeout=timeout + 20)
        return proc.returncode == 0, output
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=10)


@pytest.mark.netns
def test_boot_does_not_wait_for_the_camera_interface(tmp_path: Path) -> None:
    """The real systemd-networkd-wait-online, with the rendered file as networkd's only one
    and the camera interface without carrier, finds the Pi online once the address is set;
    with `RequiredForOnline=no` it would wait until its timeout (a boot stalled 120 s)."""
    if not Path("/lib/systemd/systemd-networkd-wait-online").exists():
        pytest.fail("this test needs systemd-networkd (Debian's systemd package)")
    variables = load_scenario("ap_isolate")
    variables["camera_network"].update(
        {"address": "10.203.192.1/24", "dhcp_range": ["10.203.192.100", "10.203.192.200"]}
    )
    for number, camera in enumerate(variables["cameras"], start=11):
        camera["ip"] = f"10.203.192.{number}"
    out = render_inventory(write_inventory(variables, tmp_path / "inv.yml"), tmp_path / "out")
    network_dir = out / "etc/systemd/network"
    interface = variables["camera_network"]["interface"]
    online, shown = _wait_online(network_dir, interface, timeout=30)
    assert online, shown
    assert "inet 10.203.192.1/24" in shown and "NO-CARRIER" in shown, shown
    # The control: the same file with `no` leaves wait-online no link to wait for.
    network = network_dir / "60-presence-camera.network"
    network.write_text(network.read_text().replace("=no-carrier", "=no"))
    online, shown = _wait_online(network_dir, interface, timeout=3)
    assert not online, shown


def test_every_template_starts_with_the_managed_header() -> None:
    templates = [
        t
        for role in ("access_point", "dhcp", "ntp")
        for t in (REPO / "roles" / role).glob("templates/**/*.j2")
    ]
    assert len(templates) >= 11
    for template in templates:
        assert template.read_text().startswith("{{ ansible_managed | comment }}"), template


def _run_preflight(
    tmp_path: Path, variables: dict[str, object]
) -> subprocess.CompletedProcess[str]:
    """Run only the role's checks (preflight, driver) on localhost; they change nothing."""
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Preflight",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars": variables,
                    "tasks": [
                        {
                            "name": f"Run the access point's {part}",
                            "ansible.builtin.include_role": {
                                "name": "access_point",
                                "tasks_from": part,
                            },
                        }
                        for part in ("preflight.yml", "driver.yml")
                    ],
                }
            ]
        )
    )
    return subprocess.run(
        [
            str(REPO / ".venv/bin/ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={REPO / '.venv/bin/python'}",
            str(playbook),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"ANSIBLE_ROLES_PATH": str(REPO / "roles"), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )


def test_preflight_passes_a_good_inventory(tmp_path: Path) -> None:
    variables = load_scenario("vlan_per_camera")
    variables["appliance_lab"] = True  # no radio here: the AP/VLAN driver check is the lab's skip
    result = _run_preflight(tmp_path, variables)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipping the AP/VLAN driver check" in result.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"wifi": {"channel": 36}}, "wifi.channel 36 does not fit wifi.band 2.4"),
        ({"wifi": {"band": 5, "channel": 6}}, "wifi.channel 6 does not fit wifi.band 5"),
        ({"wifi": {"wpa3": True}}, "cannot be combined with wifi.isolation: vlan_per_camera"),
        ({"cameras": {1: {"vlan_id": 111}}}, "cameras[0] (nord): VLAN id 111"),
        ({"appliance_lab": False}, "is not a Wi-Fi interface"),
    ],
)
def test_preflight_names_the_problem(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    variables = load_scenario("vlan_per_camera")
    variables["appliance_lab"] = True
    for key, value in change.items():
        if key == "cameras":
            for index, fields in value.items():  # type: ignore[attr-defined]
                variables["cameras"][index].update(fields)
        elif isinstance(value, dict):
            variables[key].update(value)
        else:
            variables[key] = value
    result = _run_preflight(tmp_path, variables)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout
    assert "correct-horse-battery" not in result.stdout + result.stderr


def _run_vlan_cleanup(tmp_path: Path, scenario: str, network_dir: Path, hostapd_dir: Path) -> None:
    """The role's cleanup tasks, on a test directory, with the role's own defaults and vars."""
    playbook = tmp_path / "cleanup.yml"
    role = REPO / "roles/access_point"
    variables = load_scenario(scenario)
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Cleanup",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars_files": [str(role / "defaults/main.yml"), str(role / "vars/main.yml")],
                    "vars": variables,
                    "tasks": [
                        {
                            "name": "Remove stale camera network files",
                            "ansible.builtin.import_tasks": str(role / "tasks/vlan_cleanup.yml"),
                        }
                    ],
                    "handlers": [
                        {
                            "name": "Reload systemd-networkd",
                            "ansible.builtin.debug": {"msg": "reload"},
                        }
                    ],
                }
            ]
        )
    )
    result = subprocess.run(
        [
            str(REPO / ".venv/bin/ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={REPO / '.venv/bin/python'}",
            # Extra vars: above the role defaults loaded as vars_files.
            "-e",
            f"access_point_networkd_dir={network_dir}",
            "-e",
            f"access_point_hostapd_dir={hostapd_dir}",
            str(playbook),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("scenario", "kept", "hostapd_kept"),
    [
        (
            "vlan_per_camera",
            {"61-presence-vlan-nord.network", "61-presence-vlan-sued.network"},
            {"hostapd.conf", "hostapd.wpa_psk", "hostapd.vlan"},
        ),
        ("ap_isolate", set(), {"hostapd.conf"}),
    ],
)
def test_files_of_cameras_that_left_are_removed(
    tmp_path: Path, scenario: str, kept: set[str], hostapd_kept: set[str]
) -> None:
    network_dir = tmp_path / "network"
    hostapd_dir = tmp_path / "hostapd"
    network_dir.mkdir()
    hostapd_dir.mkdir()
    ours = {
        "61-presence-vlan-nord.network",
        "61-presence-vlan-sued.network",
        "61-presence-vlan-gone.network",
    }
    others = {"60-presence-camera.network", "10-eth0.network"}
    for name in ours | others:
        (network_dir / name).write_text("[Match]\n")
    for name in ("hostapd.conf", "hostapd.wpa_psk", "hostapd.vlan"):
        (hostapd_dir / name).write_text("#\n")
    _run_vlan_cleanup(tmp_path, scenario, network_dir, hostapd_dir)
    assert {p.name for p in network_dir.iterdir()} == kept | others
    assert {p.name for p in hostapd_dir.iterdir()} == hostapd_kept


@pytest.mark.parametrize("role", ["access_point", "dhcp", "ntp"])
def test_argument_specs_accept_every_schema_key_of_what_they_declare(role: str) -> None:
    """Ansible refuses unknown sub-keys: a role declaring `cameras` must list every camera key
    the schema allows, or a valid inventory would fail the role's argument validation."""
    from appliance.schema import to_argument_spec

    schema = to_argument_spec()
    spec = yaml.safe_load((REPO / "roles" / role / "meta/argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]

    def missing(path: str, declared: dict, expected: dict) -> list[str]:
        gaps = []
        for key, entry in expected.items():
            if key not in declared:
                gaps.append(path + key)
            elif "options" in entry:
                gaps += missing(f"{path}{key}.", declared[key].get("options", {}), entry["options"])
        return gaps

    gaps = []
    for key in options.keys() & schema.keys():
        if "options" in schema[key]:
            gaps += missing(f"{key}.", options[key].get("options", {}), schema[key]["options"])
    assert not gaps, f"roles/{role} argument spec lacks {gaps}"
