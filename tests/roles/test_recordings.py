"""recordings role: what it renders, and the real vsftpd running that very configuration.

The namespace test starts Debian's vsftpd on the rendered vsftpd.conf, PAM service, password
file and per-camera settings (installed into a private overlay of /etc, with the role's FTP
account added there: the host's /etc is never touched), between a "Pi" and two "cameras" in
namespaces of their own. The cameras use Python's ftplib in passive mode, as an export would.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import string
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.property_cases import examples, ran
from tests.roles.conftest import Netns, load_scenario, render_inventory, run, write_inventory

# This test family's addresses (10.203.144.0/20) and namespace prefix (ftpt-).
PI_CAM = "10.203.144.1"
PI_UPLINK = "10.203.145.2"
LAN = "10.203.145.1"
NORD, SUED = "10.203.144.11", "10.203.144.12"
PASSWORDS = {"nord": "nord-ftp-Secret-1", "sued": "sued-ftp-Secret-2"}
STORAGE = "/srv/ftpt-rec"
CLIENT = Path(__file__).resolve().parent / "ftp_client.py"
CONF = "etc/vsftpd.conf"
CHECK = "usr/local/sbin/presence-vsftpd-check"


def recording_vars(**recordings: Any) -> dict[str, Any]:
    """The ap_isolate scenario on this test's addresses, both cameras recording."""
    variables = load_scenario("ap_isolate")
    variables["camera_network"] = {
        "interface": "wlan0",
        "address": f"{PI_CAM}/24",
        "dhcp_range": ["10.203.144.100", "10.203.144.200"],
    }
    variables["recordings"] = {"path": STORAGE, **recordings}
    for camera, ip in zip(variables["cameras"], (NORD, SUED), strict=True):
        camera["ip"] = ip
        camera["recordings"] = True
        camera["ftp_password"] = PASSWORDS[camera["name"]]
    return variables


def render(tmp_path: Path, variables: dict[str, Any], name: str = "out") -> Path:
    inventory = write_inventory(variables, tmp_path / f"{name}.yml")
    return render_inventory(inventory, tmp_path / name, roles=("recordings",))


def _settings(out: Path) -> dict[str, str]:
    lines = (out / CONF).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


# --- rendered files -------------------------------------------------------------------


def test_vsftpd_accepts_the_rendered_config_and_the_checker_refuses_a_broken_one(
    tmp_path: Path,
) -> None:
    out = render(tmp_path, recording_vars())
    check = out / CHECK
    assert run([str(check), str(out / CONF)], check=False).returncode == 0
    for camera in ("cam-nord", "cam-sued"):
        per_user = out / "etc/vsftpd/presence-users" / camera
        assert run([str(check), str(per_user)], check=False).returncode == 0
    broken = tmp_path / "broken.conf"
    broken.write_text((out / CONF).read_text() + "download_enable=maybe\n")
    result = run([str(check), str(broken)], check=False)
    assert result.returncode == 1
    assert "bad bool value in config file for: download_enable" in result.stderr
    broken.write_text((out / CONF).read_text() + "no_such_option=YES\n")
    result = run([str(check), str(broken)], check=False)
    assert result.returncode == 1 and "unrecognised variable" in result.stderr


def test_camera_side_only_write_only_chrooted_passive(tmp_path: Path) -> None:
    settings = _settings(render(tmp_path, recording_vars()))
    assert settings["listen_address"] == PI_CAM and settings["pasv_address"] == PI_CAM
    assert settings["listen_ipv6"] == "NO"
    assert (settings["pasv_min_port"], settings["pasv_max_port"]) == ("50000", "50019")
    assert settings["download_enable"] == "NO" and settings["chroot_local_user"] == "YES"
    assert settings["guest_enable"] == "YES" and settings["anonymous_enable"] == "NO"
    assert settings["port_enable"] == "NO" and settings["mdtm_write"] == "NO"
    assert settings["cmds_denied"] == "DELE,RMD,SITE"
    active = _settings(render(tmp_path, recording_vars(ftp={"mode": "active"}), "active"))
    assert active["port_enable"] == "YES" and active["connect_from_port_20"] == "YES"
    ranged = recording_vars(ftp={"passive_ports": [40000, 40001]})
    assert _settings(render(tmp_path, ranged, "ranged"))["pasv_max_port"] == "40001"


def test_passwords_reach_the_pi_only_as_hashes_in_a_root_only_file(tmp_path: Path) -> None:
    out = render(tmp_path, recording_vars())
    passwd = out / "etc/vsftpd/presence-users.passwd"
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o600
    entries = [line for line in passwd.read_text().splitlines() if not line.startswith("#")]
    assert [e.split(":", 1)[0] for e in entries] == ["cam-nord", "cam-sued"]
    assert all(e.split(":", 1)[1].startswith("$6$") for e in entries)
    again = render(tmp_path, recording_vars(), "again")
    # Stable salt: a second install writes the same file (idempotent).
    assert (again / "etc/vsftpd/presence-users.passwd").read_text() == passwd.read_text()
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not any(p in text for p in PASSWORDS.values()), path
    users = out / "etc/vsftpd/presence-users"
    assert (users / "cam-nord").read_text().splitlines()[-1] == f"local_root={STORAGE}/nord"
    assert "cam-nord\ncam-sued" in (out / "etc/vsftpd/presence-users.list").read_text()


def test_a_vaulted_ftp_password_reaches_the_pi_as_its_hash(tmp_path: Path) -> None:
    """ftp_password as an Ansible Vault value: decrypted by the inventory loader, hashed."""
    from appliance.inventory import load_inventory
    from appliance.render import render_appliance

    vault_pass = tmp_path / "vault-pass"
    vault_pass.write_text("correct horse battery staple\n")
    encrypted = run(
        [str(Path(sys.executable).parent / "ansible-vault"), "encrypt_string",
         "--vault-password-file", str(vault_pass), PASSWORDS["nord"]],
        timeout=60,
    ).stdout.strip()  # fmt: skip
    variables = recording_vars()
    variables["cameras"][0]["ftp_password"] = "VAULTED"
    inventory = write_inventory(variables, tmp_path / "vaulted.yml")
    lines = []
    for line in inventory.read_text().splitlines():
        if line.strip() == "ftp_password: VAULTED":
            indent = " " * (len(line) - len(line.lstrip()) + 2)
            lines.append(line.replace("VAULTED", "!vault |"))
            lines += [indent + part.strip() for part in encrypted.splitlines()[1:]]
        else:
            lines.append(line)
    inventory.write_text("\n".join(lines) + "\n")
    assert PASSWORDS["nord"] not in inventory.read_text()
    out = tmp_path / "vaulted"
    render_appliance(load_inventory(str(inventory), str(vault_pass)), "pi", out, ["recordings"])
    passwd = (out / "etc/vsftpd/presence-users.passwd").read_text()
    (entry,) = [line for line in passwd.splitlines() if line.startswith("cam-nord:")]
    hashed = entry.split(":", 1)[1]
    salt = hashed.split("$")[2]
    again = run(["openssl", "passwd", "-6", "-salt", salt, PASSWORDS["nord"]]).stdout.strip()
    assert hashed == again  # the hash of the decrypted password, not of the vault text
    assert "$ANSIBLE_VAULT" not in passwd and PASSWORDS["nord"] not in passwd


def test_only_recording_cameras_get_a_user_and_nothing_is_rendered_without_recordings(
    tmp_path: Path,
) -> None:
    variables = recording_vars()
    variables["cameras"][1]["recordings"] = False
    out = render(tmp_path, variables)
    assert sorted(p.name for p in (out / "etc/vsftpd/presence-users").iterdir()) == ["cam-nord"]
    assert json.loads((out / "etc/presence-appliance/recordings.json").read_text())["cameras"] == [
        "nord"
    ]
    for camera in variables["cameras"]:
        camera["recordings"] = False
    assert _files(render(tmp_path, variables, "none")) == []  # no camera records
    del variables["recordings"]
    assert _files(render(tmp_path, variables, "off")) == []  # recordings off


def _files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file()] if out.exists() else []


def test_the_unit_waits_for_the_storage_and_restarts(tmp_path: Path) -> None:
    out = render(tmp_path, recording_vars(require_mount=True))
    dropin = (out / "etc/systemd/system/vsftpd.service.d/presence-appliance.conf").read_text()
    assert f"RequiresMountsFor={STORAGE}" in dropin
    assert f"ConditionPathIsMountPoint={STORAGE}" in dropin
    assert "Restart=always" in dropin
    # Bound to the storage's mount unit, named as systemd names it.
    for path in (STORAGE, "/mnt/usb-disk/rec.ords", "/srv/.cams/a_b-c"):
        other = render(tmp_path, recording_vars(require_mount=True, path=path), f"m{len(path)}")
        dropin = (other / "etc/systemd/system/vsftpd.service.d/presence-appliance.conf").read_text()
        unit = run(["systemd-escape", "--path", "--suffix=mount", path]).stdout.strip()
        assert f"BindsTo={unit}\n" in dropin and f"After={unit}\n" in dropin, (unit, dropin)
    plain = render(tmp_path, recording_vars(), "plain")
    text = (plain / "etc/systemd/system/vsftpd.service.d/presence-appliance.conf").read_text()
    assert "ConditionPathIsMountPoint" not in text and "BindsTo" not in text
    timer = (out / "etc/systemd/system/presence-recordings-prune.timer").read_text()
    assert "OnUnitActiveSec=5min" in timer
    config = json.loads((out / "etc/presence-appliance/recordings.json").read_text())
    assert config["require_mount"] is True and config["path"] == STORAGE
    assert config["min_free_mb"] == 1024 and config["camera_quota_mb"] == 4096


# --- the real vsftpd between namespaces -----------------------------------------------


class FtpSite:
    """A Pi running vsftpd on the rendered files, cameras nord and sued, and a LAN host."""

    def __init__(self, netns: Netns, tmp: Path) -> None:
        self.netns = netns
        self.tmp = tmp
        self.ns: dict[str, str] = {}
        self.srv = tmp / "srv"
        self.storage = self.srv / STORAGE.removeprefix("/srv/")
        self.log = tmp / "vsftpd.log"
        # vsftpd's own log (/var/log/vsftpd.log in its mount namespace's overlay).
        self.ftp_log = tmp / "log-upper" / "vsftpd.log"

    def add(self, role: str) -> str:
        name = f"ftpt-{role}-{self.netns.tag}"
        run(["ip", "netns", "add", name])
        self.netns.namespaces.append(name)
        self.netns.exec(name, ["ip", "link", "set", "lo", "up"])
        self.ns[role] = name
        return name

    def build(self, out: Path) -> None:
        pi = self.add("pi")
        for role, addr in (("nord", NORD), ("sued", SUED)):
            self.add(role)
            self.netns.veth(pi, f"wl-{role}", self.ns[role], "wlan0")
            self.netns.exec(self.ns[role], ["ip", "addr", "add", f"{addr}/24", "dev", "wlan0"])
        # The camera side as one bridge (the Wi-Fi radio), the uplink its own veth.
        self.netns.exec(pi, ["ip", "link", "add", "wlan0", "type", "bridge"])
        for role in ("nord", "sued"):
            self.netns.exec(pi, ["ip", "link", "set", f"wl-{role}", "master", "wlan0"])
        self.netns.exec(pi, ["ip", "addr", "add", f"{PI_CAM}/24", "dev", "wlan0"])
        self.netns.exec(pi, ["ip", "link", "set", "wlan0", "up"])
        self.add("lan")
        self.netns.veth(pi, "eth0", self.ns["lan"], "eth0")
        self.netns.exec(pi, ["ip", "addr", "add", f"{PI_UPLINK}/24", "dev", "eth0"])
        self.netns.exec(self.ns["lan"], ["ip", "addr", "add", f"{LAN}/24", "dev", "eth0"])
        self.netns.exec(self.ns["lan"], ["ip", "route", "add", "default", "via", PI_UPLINK])
        self.start(out)

    def start(self, out: Path) -> None:
        upper, work = self.tmp / "etc-upper", self.tmp / "etc-work"
        log_upper, log_work = self.tmp / "log-upper", self.tmp / "log-work"
        for folder in (upper, work, log_upper, log_work, self.srv):
            folder.mkdir()
        cams = " ".join(f"{STORAGE}/{name}" for name in PASSWORDS)
        # As the role does it on the Pi: the files at their paths, the FTP account, the
        # folders; in this process's own mount namespace only.
        script = f"""set -e
mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc
mount -t overlay overlay -o lowerdir=/var/log,upperdir={log_upper},workdir={log_work} /var/log
cp -r {out}/etc/vsftpd /etc/vsftpd
cp {out}/etc/vsftpd.conf /etc/vsftpd.conf
cp {out}/etc/pam.d/presence-ftp /etc/pam.d/presence-ftp
groupadd --system presence-ftp
useradd --system -g presence-ftp -d /var/run/vsftpd/empty -s /usr/sbin/nologin presence-ftp
mount --bind {self.srv} /srv
mkdir -p {cams}
chown root:www-data {STORAGE} && chmod 0751 {STORAGE}
for d in {cams}; do chown presence-ftp:www-data $d; chmod 2750 $d; done
if [ ! -d /run/vsftpd/empty ]; then mount -t tmpfs tmpfs /run; mkdir -p /run/vsftpd/empty; fi
exec /usr/sbin/vsftpd /etc/vsftpd.conf
"""
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        # unshare and sh exec: this is vsftpd's PID, in its own mount namespace.
        self.server = self.netns.start(self.ns["pi"], argv, self.log)
        deadline = time.monotonic() + 10
        while not self.ftp("nord", "nobody", "x", "login").get("connected"):
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def ftp(self, role: str, user: str, password: str, *action: str, host: str = PI_CAM) -> Any:
        argv = [sys.executable, str(CLIENT), host, user, password, *action]
        result = self.netns.exec(self.ns[role], argv, timeout=30, check=False)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FtpSite]:
    if os.geteuid() != 0:
        pytest.fail("namespace tests need root")
    tmp = tmp_path_factory.mktemp("ftp")
    out = render(tmp, recording_vars())
    spaces = Netns()
    try:
        ftp_site = FtpSite(spaces, tmp)
        ftp_site.build(out)
        yield ftp_site
    finally:
        spaces.cleanup()


def _ftp_uid(site: FtpSite) -> int:
    return (site.storage / "nord").stat().st_uid


@pytest.mark.netns
def test_a_camera_uploads_into_its_own_folder_in_passive_mode(site: FtpSite) -> None:
    result = site.ftp("nord", "cam-nord", PASSWORDS["nord"], "upload", "2026/11/30", "evt", "5000")
    assert result.get("ok"), result
    assert result["pwd"] == "/2026/11/30"  # chrooted: its folder is its /
    assert result["pasv_port"] in range(50000, 50020)
    stored = site.storage / "nord/2026/11/30/evt-0.mp4"
    assert stored.stat().st_size == 5000
    info = stored.stat()
    assert info.st_uid == _ftp_uid(site) and stat.S_IMODE(info.st_mode) == 0o640
    # Readable by the dashboard's group (www-data), through setgid folders the camera made.
    assert info.st_gid == pwd.getpwnam("www-data").pw_gid
    assert (site.storage / "nord/2026").stat().st_mode & stat.S_ISGID


@pytest.mark.netns
def test_a_camera_cannot_download_delete_or_go_active(site: FtpSite) -> None:
    up = site.ftp("nord", "cam-nord", PASSWORDS["nord"], "upload", "2026/12/01", "keep", "100")
    assert up.get("ok"), up
    down = site.ftp("nord", "cam-nord", PASSWORDS["nord"], "download", "2026/12/01/keep-0.mp4")
    assert down["logged_in"] and not down["ok"] and down["error"].startswith("550"), down
    gone = site.ftp("nord", "cam-nord", PASSWORDS["nord"], "delete", "2026/12/01/keep-0.mp4")
    assert not gone["ok"] and gone["error"].startswith("550"), gone
    assert (site.storage / "nord/2026/12/01/keep-0.mp4").exists()
    active = site.ftp("nord", "cam-nord", PASSWORDS["nord"], "active", "2026", "act")
    assert not active["ok"] and active["error"][:3] in ("500", "550"), active
    # Folders the C library would look for in a chroot are refused (a writable chroot root).
    for folder in ("etc", "lib", "2026/../usr"):
        made = site.ftp("nord", "cam-nord", PASSWORDS["nord"], "upload", folder, "x", "10")
        assert made["logged_in"] and not made["ok"] and made["error"].startswith("550"), made
    assert not (site.storage / "nord/etc").exists() and not (site.storage / "nord/lib").exists()


@pytest.mark.netns
def test_another_camera_cannot_log_in_as_it_nor_list_its_folder(site: FtpSite) -> None:
    assert site.ftp("nord", "cam-nord", PASSWORDS["nord"], "upload", "2026/11/29", "a", "10")["ok"]
    # sued with its own password, as nord: refused.
    as_nord = site.ftp("sued", "cam-nord", PASSWORDS["sued"], "login")
    assert as_nord["logged_in"] is False and as_nord["error"].startswith("530"), as_nord
    # sued logged in as itself sees only its own folder, wherever it looks.
    assert site.ftp("sued", "cam-sued", PASSWORDS["sued"], "upload", "2026/11/29", "b", "10")["ok"]
    names: list[str] = []
    for path in ("/", "..", "../nord", "/nord", f"{STORAGE}/nord", "../../2026/11/29"):
        listed = site.ftp("sued", "cam-sued", PASSWORDS["sued"], "list", path)
        names += listed.get("listed") or []
    assert names and not any(name.startswith("a-") or "/a-" in name for name in names), names
    assert any("2026" in name for name in names)  # its own folder is listed


@pytest.mark.netns
@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("cam-nord", "wrong-password-1"),
        ("cam-nord", ""),
        ("cam-ghost", PASSWORDS["nord"]),  # no such camera
        ("presence-ftp", PASSWORDS["nord"]),  # the system account behind the logins
        ("root", PASSWORDS["nord"]),
        ("anonymous", "guest@"),
        ("ftp", "guest@"),
    ],
)
def test_wrong_logins_are_refused(site: FtpSite, user: str, password: str) -> None:
    result = site.ftp("nord", user, password, "login")
    assert result["connected"] and result["logged_in"] is False, result
    assert result["error"].startswith("530"), result


@pytest.mark.netns
def test_the_server_is_not_on_the_uplink(site: FtpSite) -> None:
    from_lan = site.ftp("lan", "cam-nord", PASSWORDS["nord"], "login", host=PI_UPLINK)
    assert from_lan["connected"] is False and "refused" in from_lan["error"].lower(), from_lan
    # Control: the Pi's camera-side address answers (the firewall is what drops the LAN
    # there: tests/roles/test_firewall.py).
    assert site.ftp("nord", "cam-nord", PASSWORDS["nord"], "login")["logged_in"]


@pytest.mark.netns
def test_a_full_disk_refuses_the_upload_and_leaves_no_partial_file(site: FtpSite) -> None:
    folder = f"{STORAGE}/nord/full"
    uid, gid = _ftp_uid(site), pwd.getpwnam("www-data").pw_gid
    # A 1 MB file system at nord/full, in vsftpd's mount namespace only (gone with it).
    options = f"size=1m,mode=2750,uid={uid},gid={gid}"
    in_server = ["nsenter", "-t", str(site.server.pid), "-m", "--"]
    run(
        [*in_server, "sh", "-c", f"mkdir -p {folder} && mount -t tmpfs -o {options} tmpfs {folder}"]
    )
    big = site.ftp("nord", "cam-nord", PASSWORDS["nord"], "upload", "full", "big", "2000000")
    assert big["logged_in"] and not big["ok"] and big["error"][:3] in ("451", "452"), big
    assert big["uploaded"] == 0
    # delete_failed_uploads: the cut file is gone, the space is free again.
    assert run([*in_server, "ls", "-A", folder]).stdout == ""
    assert "[cam-nord] FAIL UPLOAD" in site.ftp_log.read_text()
    # The server goes on: the next upload where there is room lands.
    after = site.ftp("nord", "cam-nord", PASSWORDS["nord"], "upload", "2026/11/30", "then", "1000")
    assert after.get("ok"), after


@pytest.mark.netns
def test_active_mode_is_a_knob_the_real_vsftpd_follows(tmp_path: Path) -> None:
    """ftp.mode: active: PORT works (the Pi connects back from port 20), passive still does."""
    out = render(tmp_path, recording_vars(ftp={"mode": "active"}), "active")
    spaces = Netns()
    try:
        active = FtpSite(spaces, tmp_path)
        active.build(out)
        up = active.ftp("nord", "cam-nord", PASSWORDS["nord"], "active", "2026/11/30", "act")
        assert up.get("ok"), up
        assert (active.storage / "nord/2026/11/30/act-0.mp4").stat().st_size == 1000
        passive = active.ftp("sued", "cam-sued", PASSWORDS["sued"], "upload", "2026", "p", "10")
        assert passive.get("ok"), passive
    finally:
        spaces.cleanup()


@pytest.mark.netns
def test_prune_keeps_the_quota_after_100_uploads(site: FtpSite, tmp_path: Path) -> None:
    # 100 uploads of 200 KB (about 20 MB) by one camera against a 16 MB quota.
    result = site.ftp(
        "sued", "cam-sued", PASSWORDS["sued"], "upload", "2026/11/28", "load", "204800", "100"
    )
    assert result.get("ok") and result["uploaded"] == 100, result
    folder = site.storage / "sued"
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    assert total > 16 * 1024 * 1024
    config = tmp_path / "recordings.json"
    settings = {"path": str(site.storage), "retention_days": 30, "camera_quota_mb": 16}
    config.write_text(json.dumps({**settings, "min_free_mb": 64, "require_mount": False}))
    helper = site.tmp / "out" / "usr/local/sbin/presence-recordings"
    pruned = run([sys.executable, str(helper), "--config", str(config), "prune"])
    left = [p for p in files if p.exists()]
    kept = sum(p.stat().st_size for p in left)
    assert kept <= 16 * 1024 * 1024 < kept + 204800
    # Oldest first: what is left is the newest uploads.
    assert left == files[len(files) - len(left) :]
    deleted = [line for line in pruned.stdout.splitlines() if line.startswith("deleted sued/")]
    assert len(deleted) == len(files) - len(left)
    assert "camera over its 16 MB quota" in deleted[0]
    # nord's files were not touched.
    assert (site.storage / "nord/2026/11/30/evt-0.mp4").exists()


@pytest.mark.netns
def test_activity_counts_each_cameras_logins_refusals_and_uploads(
    site: FtpSite, tmp_path: Path
) -> None:
    """After the tests above (run in file order): what vsftpd logged, as the CLI gets it."""
    config = tmp_path / "recordings.json"
    cameras = list(PASSWORDS)
    config.write_text(json.dumps({"path": str(site.storage), "retention_days": 30,
                                  "camera_quota_mb": 16, "min_free_mb": 64,
                                  "ftp_log": str(site.ftp_log), "cameras": cameras}))  # fmt: skip
    helper = site.tmp / "out" / "usr/local/sbin/presence-recordings"
    result = run([sys.executable, str(helper), "--config", str(config), "activity", "--json"])
    seen = json.loads(result.stdout)["cameras"]
    log = site.ftp_log.read_text()
    assert seen["nord"]["logins"] == log.count("[cam-nord] OK LOGIN") >= 5
    # Wrong password, empty password, and sued with its own password as nord.
    assert seen["nord"]["failed_logins"] == log.count("[cam-nord] FAIL LOGIN") >= 3
    assert set(seen["nord"]["clients"]) == {NORD, SUED}  # sued's attempt shows where from
    assert seen["nord"]["refused"] >= 3  # the etc, lib and usr folders
    assert seen["sued"]["uploads"] == 101 and seen["sued"]["upload_bytes"] >= 100 * 204800
    assert seen["sued"]["clients"] == [SUED] and seen["sued"]["failed_logins"] == 0
    assert PASSWORDS["nord"] not in log and PASSWORDS["sued"] not in log


# --- whatever validate accepts renders into a configuration vsftpd accepts ------------

PATH_PART = st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=20)


@pytest.mark.property
@settings(max_examples=examples(25))
@given(
    parts=st.lists(PATH_PART, min_size=1, max_size=4),
    password=st.text(alphabet=[chr(c) for c in range(0x21, 0x7F)], min_size=8, max_size=64),
    ports=st.tuples(st.integers(1024, 65535), st.integers(0, 200)),
)
@example(parts=["mnt", "usb"], password="#;=%$'\"`\\!", ports=(1024, 1))
def test_accepted_values_render_a_config_vsftpd_accepts(
    tmp_path_factory: pytest.TempPathFactory, parts: list[str], password: str, ports: Any
) -> None:
    from appliance.schema import errors, validate_appliance

    first, span = ports
    variables = recording_vars(
        path="/srv/" + "/".join(parts), ftp={"passive_ports": [first, min(first + span, 65535)]}
    )
    variables["cameras"][0]["ftp_password"] = password
    if errors(validate_appliance("pi", variables)):
        ran("recordings render: refused by validate")
        return
    ran("recordings render: accepted, rendered, checked by vsftpd")
    tmp = tmp_path_factory.mktemp("prop")
    out = render(tmp, variables)
    check = out / CHECK
    assert run([str(check), str(out / CONF)], check=False).returncode == 0
    user_file = out / "etc/vsftpd/presence-users/cam-nord"
    assert run([str(check), str(user_file)], check=False).returncode == 0
    path = variables["recordings"]["path"].rstrip("/")
    assert user_file.read_text().splitlines()[-1] == f"local_root={path}/nord"
    assert _settings(out)["pasv_min_port"] == str(first)
    passwd = (out / "etc/vsftpd/presence-users.passwd").read_text()
    assert password not in passwd and passwd.count("\ncam-") == 2
