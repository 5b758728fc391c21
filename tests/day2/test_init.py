"""`init` and `camera add --from-lease`: answers, proposals, the written vaulted inventory,
and the Pi's preflight from a recording.

The recording (fixtures/doctor/netns.preflight.txt) is the preflight script's real output
in a network namespace on a Debian 12 container host, with an `eth0` and a radio-less
`wlan0` like the lab Pi's (tests/e2e/test_init.py writes the lab Pi's own to
test-artifacts/doctor/). The host has no sshd: a stand-in `ssh` on PATH replays the
recording (the one test double, thin).
tests/e2e/test_init.py runs the same command against the lab Pi over real SSH and installs.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from appliance.cli import main
from appliance.doctor_ssh import split_sections
from appliance.init_answers import (
    PASSPHRASE_LENGTH,
    AnswersError,
    check_answers,
    load_answers,
    propose_network,
)
from appliance.init_preflight import parse_facts, preflight_checks
from appliance.inventory import load_inventory
from appliance.schema import passphrase_problem

FIXTURES = Path(__file__).parent / "fixtures"
PREFLIGHT = FIXTURES / "doctor" / "netns.preflight.txt"
GETHOMEDATA = FIXTURES / "gethomedata.json"
DRIVE_ID = "9f86d081884c7d659a2feaa0c55ad015"  # the secure id of "Drive" in GETHOMEDATA

FAKE_SSH = """#!{python}
import os, sys
remote = sys.argv[-1]
if os.environ.get("FAKE_SSH_MODE") == "down":
    sys.stderr.write("ssh: connect to host 10.203.208.5 port 22: Connection timed out\\n")
    sys.exit(255)
if "@@pa:" not in remote:  # `leases`: cat of the lease file
    sys.stdout.write(open({leases!r}).read())
    sys.exit(0)
text = open(os.environ.get("FAKE_SSH_RECORDING", {recording!r})).read()
sys.stdout.write(text)
"""


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "ssh"
    script.write_text(
        FAKE_SSH.format(
            python=sys.executable,
            recording=str(PREFLIGHT),
            leases=str(FIXTURES / "dnsmasq.leases"),
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("PRESENCE_INVENTORY", raising=False)
    return script


def answers_file(tmp_path: Path, **extra: Any) -> Path:
    data = {
        "pi_address": "10.203.208.5",
        "ssh_user": "pi",
        "country": "fr",
        "cameras_from": "file",
        "gethomedata": str(GETHOMEDATA),
        **extra,
    }
    path = tmp_path / "answers.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(main, list(args), input=input)


def shown(output: str, label: str) -> str:
    return output.split(label, 1)[1].split()[0]


# ---------------------------------------------------------------------------
# Answers and proposals


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("pi_adress: 1.2.3.4\n", "pi_adress: unknown answer"),
        ("ssh_port: twenty\n", "ssh_port: expected a whole number"),
        ("cameras: [{name: a, mac: 70:ee:50:00:00:01}]\n", "cameras[0]: expected name, mac"),
        ("- a list\n", "expected a mapping of answers"),
        ("key: [unclosed\n", "not YAML"),
    ],
)
def test_bad_answers_file_names_the_key(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "a.yml"
    path.write_text(content)
    with pytest.raises(AnswersError, match=message.replace("[", r"\[")):
        load_answers(str(path))


def test_check_answers() -> None:
    from appliance.init_answers import Answers

    answers = Answers(country=" de ")
    check_answers(answers)
    assert answers.country == "DE"
    with pytest.raises(AnswersError, match="'XX' is not an ISO"):
        check_answers(Answers(country="xx"))
    with pytest.raises(AnswersError, match="cameras_from: 'cloud'"):
        check_answers(Answers(cameras_from="cloud"))
    with pytest.raises(AnswersError, match=r"camera_network: '10\.42\.0\.300/24'"):
        check_answers(Answers(camera_network="10.42.0.300/24"))


def test_proposed_network_avoids_the_pis_own() -> None:
    assert propose_network([ipaddress.IPv4Network("192.168.1.0/24")]) == "10.42.0.1/24"
    assert propose_network([ipaddress.IPv4Network("10.42.0.0/16")]) == "10.43.0.1/24"
    with pytest.raises(AnswersError):
        propose_network([ipaddress.IPv4Network("0.0.0.0/0")])


def test_preflight_from_the_lab_pi() -> None:
    """Recorded on the lab Pi (provisioned before: wlan0 already has its camera address)."""
    sections = split_sections((FIXTURES / "doctor" / "lab-pi.preflight.txt").read_text())
    facts = parse_facts(sections)
    assert (facts.codename, facts.arch, facts.virt) == ("bookworm", "x86_64", "systemd-nspawn")
    assert facts.wifi_interfaces == ["wlan0"] and facts.uplink == "eth0"
    assert facts.networks == [ipaddress.IPv4Network("10.203.1.0/24")]
    checks = preflight_checks(sections, "pi", facts, None)
    assert [(c.name, c.status) for c in checks] == [
        ("sudo", "ok"),
        ("os", "ok"),
        ("wifi", "ok"),
        ("uplink", "ok"),
    ]


def test_preflight_from_the_recording() -> None:
    sections = split_sections(PREFLIGHT.read_text())
    facts = parse_facts(sections)
    assert facts.codename == "bookworm" and facts.virt == "docker"
    assert facts.wifi_interfaces == ["wlan0"]  # a container: taken by name
    assert facts.uplink == "eth0"
    assert facts.networks == [ipaddress.IPv4Network("10.203.208.0/24")]
    checks = {c.name: c for c in preflight_checks(sections, "pi", facts, None)}
    assert {c.status for c in checks.values()} == {"ok"}
    assert "taken by name" in checks["wifi"].message
    wrong = {c.name: c for c in preflight_checks(sections, "pi", facts, "wlan1")}
    assert (
        wrong["wifi"].status == "fail" and "wlan1 is not a Wi-Fi interface" in wrong["wifi"].message
    )
    same = {c.name: c for c in preflight_checks(sections, "pi", facts, "eth0")}
    assert same["uplink"].status == "fail" or same["wifi"].status == "fail"


# ---------------------------------------------------------------------------
# The command


def test_init_writes_a_valid_vaulted_inventory(fake_ssh: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "site" / "inventory.yml"
    result = run("init", "--answers", str(answers_file(tmp_path)), "--yes", "-i", str(inventory))
    assert result.exit_code == 0, result.output
    vault = inventory.parent / ".presence-appliance" / "vault-password"
    assert stat.S_IMODE(inventory.stat().st_mode) == 0o600
    assert stat.S_IMODE(vault.stat().st_mode) == 0o600
    assert stat.S_IMODE(vault.parent.stat().st_mode) == 0o700
    assert (vault.parent / ".gitignore").read_text().splitlines()[-1] == "*"
    assert f"vault password is in {vault}" in result.output

    passphrase = shown(result.output, "passphrase: ")
    password = shown(result.output, "login: admin / ")
    assert len(passphrase) == PASSPHRASE_LENGTH and passphrase_problem(passphrase) is None
    text = inventory.read_text()
    for secret in (passphrase, password, DRIVE_ID):
        assert secret not in text
    # passphrase, web password, two cameras' secure ids and FTP passwords
    assert text.count("!vault |") == 6
    assert "# The cameras' Wi-Fi, served by the Pi." in text

    # Every command finds the vault password by itself.
    valid = run("validate", "-i", str(inventory))
    assert valid.exit_code == 0, valid.output
    loaded = load_inventory(inventory, str(vault)).appliance("pi").vars
    assert loaded["wifi"]["passphrase"] == passphrase
    assert loaded["wifi"]["country"] == "FR"
    assert loaded["web"]["users"] == [{"name": "admin", "password": password}]
    assert loaded["camera_network"] == {
        "interface": "wlan0",
        "address": "10.42.0.1/24",
        "dhcp_range": ["10.42.0.100", "10.42.0.199"],
    }
    assert loaded["uplink_interface"] == "eth0"
    cameras = {c["name"]: c for c in loaded["cameras"]}
    assert cameras["drive"] == {
        "name": "drive",
        "mac": "70:ee:50:00:00:01",
        "ip": "10.42.0.11",
        "secure_id": DRIVE_ID,
        "cloud": "block",
        "ftp_password": cameras["drive"]["ftp_password"],
    }
    # Generated, each camera its own (recordings stay off until `recordings: true`).
    assert len(cameras["drive"]["ftp_password"]) == 24
    assert cameras["drive"]["ftp_password"] != cameras["allee-du-jardin"]["ftp_password"]
    assert cameras["allee-du-jardin"]["ip"] == "10.42.0.12"
    assert loaded["ansible_host"] == "10.203.208.5" and loaded["ansible_become"] is True


def test_never_overwrites_without_force(fake_ssh: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("# mine\n")
    answers = str(answers_file(tmp_path))
    result = run("init", "--answers", answers, "--yes", "-i", str(inventory))
    assert result.exit_code == 2 and "already exists; give --force" in result.output
    assert inventory.read_text() == "# mine\n"
    result = run("init", "--answers", answers, "--yes", "--force", "-i", str(inventory))
    assert result.exit_code == 0, result.output
    vault = (tmp_path / ".presence-appliance" / "vault-password").read_text()
    # --force again: a new inventory, the same vault password (other files may use it).
    result = run("init", "--answers", answers, "--yes", "--force", "-i", str(inventory))
    assert result.exit_code == 0 and "vault password (kept)" in result.output
    assert (tmp_path / ".presence-appliance" / "vault-password").read_text() == vault
    assert run("validate", "-i", str(inventory)).exit_code == 0


def test_interactive_with_cameras_typed_in(fake_ssh: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    typed = "\n".join(
        [
            "10.203.208.5",  # address
            "",  # user: the default pi
            "gb",  # country
            "manual",
            "Front door",
            "70:EE:50:12:34:56",
            "ab" * 16,
            "",  # no more cameras
            "y",  # write it
        ]
    )
    result = run("init", "-i", str(inventory), input=typed + "\n")
    assert result.exit_code == 0, result.output
    assert "ab" * 16 not in result.output  # the secure id prompt hides the input
    loaded = load_inventory(inventory, str(tmp_path / ".presence-appliance" / "vault-password"))
    (camera,) = loaded.appliance("pi").vars["cameras"]
    assert camera["name"] == "front-door" and camera["mac"] == "70:ee:50:12:34:56"
    assert camera["secure_id"] == "ab" * 16 and camera["ip"] == "10.42.0.11"
    assert loaded.appliance("pi").vars["ansible_user"] == "pi"


def test_declining_writes_nothing(fake_ssh: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    result = run(
        "init", "--answers", str(answers_file(tmp_path)), "-i", str(inventory), input="n\n"
    )
    assert result.exit_code == 1 and "nothing was written" in result.output
    assert not inventory.exists()


def test_unsupported_pi_is_refused_with_a_fix(
    fake_ssh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = PREFLIGHT.read_text().replace("VERSION_CODENAME=bookworm", "VERSION_CODENAME=buster")
    recording = tmp_path / "old.txt"
    recording.write_text(text)
    monkeypatch.setenv("FAKE_SSH_RECORDING", str(recording))
    inventory = tmp_path / "inventory.yml"
    result = run("init", "--answers", str(answers_file(tmp_path)), "--yes", "-i", str(inventory))
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if line.split()[:2] == ["FAIL", "os"])
    assert "buster is not supported" in line and "-> install Raspberry Pi OS" in line
    assert "nothing was written" in result.output and not inventory.exists()
    assert not (tmp_path / ".presence-appliance").exists()


def test_unreachable_pi_is_one_line_with_a_fix(
    fake_ssh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SSH_MODE", "down")
    inventory = tmp_path / "inventory.yml"
    result = run("init", "--answers", str(answers_file(tmp_path)), "--yes", "-i", str(inventory))
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if "FAIL" in line]
    assert "Connection timed out" in line and "ssh-copy-id" in line
    assert not inventory.exists()


def test_yes_without_an_answer_names_it(fake_ssh: Path, tmp_path: Path) -> None:
    path = tmp_path / "a.yml"
    path.write_text("pi_address: 10.203.208.5\nssh_user: pi\n")
    result = run("init", "--answers", str(path), "--yes", "-i", str(tmp_path / "i.yml"))
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: country: missing (give --country or `country:` in the answers file)"
    )


def test_flags_override_the_answers_file(fake_ssh: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    answers = answers_file(tmp_path, cameras_from="later")
    result = run(
        "init", "--answers", str(answers), "--country", "US", "--yes", "-i", str(inventory)
    )
    assert result.exit_code == 0, result.output
    loaded = load_inventory(inventory, str(tmp_path / ".presence-appliance" / "vault-password"))
    assert loaded.appliance("pi").vars["wifi"]["country"] == "US"
    assert loaded.appliance("pi").vars["cameras"] == []


# ---------------------------------------------------------------------------
# camera add --from-lease


def test_camera_add_from_lease_on_an_init_inventory(fake_ssh: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    answers = answers_file(tmp_path, cameras_from="later")
    assert run("init", "--answers", str(answers), "--yes", "-i", str(inventory)).exit_code == 0
    leases = (FIXTURES / "dnsmasq.leases").read_text().splitlines()
    netatmo = next(line.split() for line in leases if " 70:ee:50:" in line)
    mac, hostname = netatmo[1], netatmo[3]
    secure_id = "cd" * 16
    result = run(
        "camera", "add", "--from-lease", mac.upper(), "--secure-id", secure_id, "-i", str(inventory)
    )
    assert result.exit_code == 0, result.output
    text = inventory.read_text()
    assert secure_id not in text and text.count("!vault |") == 3  # vaulted by default
    vault = str(tmp_path / ".presence-appliance" / "vault-password")
    (camera,) = load_inventory(inventory, vault).appliance("pi").vars["cameras"]
    assert camera["mac"] == mac and camera["secure_id"] == secure_id
    expected_name = hostname if hostname != "*" else "camera-" + mac.replace(":", "")[-4:]
    assert camera["name"] == expected_name.lower()
    assert camera["ip"] == "10.42.0.2" or ipaddress.IPv4Address(
        camera["ip"]
    ) in ipaddress.IPv4Network("10.42.0.0/24")

    again = run(
        "camera", "add", "--from-lease", mac, "--secure-id", secure_id, "-i", str(inventory)
    )
    assert again.exit_code == 1 and f"{mac} is already camera" in again.output
    missing = run(
        "camera",
        "add",
        "--from-lease",
        "70:ee:50:99:99:99",
        "--secure-id",
        secure_id,
        "-i",
        str(inventory),
    )
    assert missing.exit_code == 1
    assert "no DHCP lease for 70:ee:50:99:99:99" in missing.output
    both = run(
        "camera",
        "add",
        "x",
        "--mac",
        mac,
        "--from-lease",
        mac,
        "--secure-id",
        secure_id,
        "-i",
        str(inventory),
    )
    assert both.exit_code == 2 and "either --mac or --from-lease" in both.output


@pytest.mark.parametrize("command", ["init", "doctor"])
def test_help_does_not_import_ansible(command: str) -> None:
    code = (
        "import sys; from click.testing import CliRunner; from appliance.cli import main; "
        f"r = CliRunner().invoke(main, ['{command}', '--help']); assert r.exit_code == 0; "
        "t = CliRunner().invoke(main, ['--help']).output; "
        f"print('ansible' in sys.modules, '{command}' in t)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["False", "True"], result.stdout + result.stderr


@pytest.fixture
def cloud() -> Any:
    """Netatmo's API on loopback (the discover tests' stand-in)."""
    import threading

    from tests.day2.test_discover import FakeCloud

    fake = FakeCloud()
    thread = threading.Thread(target=fake.server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
        thread.join(timeout=5)


def test_cameras_from_a_netatmo_token(
    fake_ssh: Path, tmp_path: Path, cloud: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "tok-" + "9" * 30
    cloud.route("/api/gethomedata", 200, yaml.safe_load(GETHOMEDATA.read_text()))
    monkeypatch.setenv("NETATMO_TOKEN", token)
    inventory = tmp_path / "inventory.yml"
    answers = answers_file(tmp_path, cameras_from="token")
    result = run(
        "init", "--answers", str(answers), "--yes", "--api-url", cloud.url, "-i", str(inventory)
    )
    assert result.exit_code == 0, result.output
    assert token not in result.output and token not in inventory.read_text()
    assert cloud.requests == [("/api/gethomedata", f"Bearer {token}")]
    vault = str(tmp_path / ".presence-appliance" / "vault-password")
    names = [c["name"] for c in load_inventory(inventory, vault).appliance("pi").vars["cameras"]]
    assert names == ["drive", "allee-du-jardin"]

    cloud.route("/api/gethomedata", 403, {"error": {"code": 3, "message": "Access token expired"}})
    inventory.unlink()
    result = run(
        "init", "--answers", str(answers), "--yes", "--api-url", cloud.url, "-i", str(inventory)
    )
    assert result.exit_code == 1 and not inventory.exists()
    assert "Netatmo refused the token" in result.output and token not in result.output


def test_invalid_typed_camera_writes_nothing(fake_ssh: Path, tmp_path: Path) -> None:
    """The schema checks the proposed inventory first: a bad MAC leaves no file behind."""
    cameras = [{"name": "gate", "mac": "70:ee:50:zz:00:01", "secure_id": "ab" * 16}]
    answers = answers_file(tmp_path, cameras_from="manual", cameras=cameras)
    inventory = tmp_path / "inventory.yml"
    result = run("init", "--answers", str(answers), "--yes", "-i", str(inventory))
    assert result.exit_code == 1
    assert "cameras[0].mac" in result.output and "nothing was written" in result.output
    assert "ab" * 16 not in result.output
    assert not inventory.exists() and not (tmp_path / ".presence-appliance").exists()
