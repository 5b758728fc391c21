"""Boot a lab "Pi": an overlay over the cached image, booted by systemd-nspawn in its namespace."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from importlib import resources
from pathlib import Path

from appliance.lab.image import CACHE_ROOT, mounts_under
from appliance.lab.plan import LAN_GATEWAY, Pi
from appliance.lab.proc import spawn
from appliance.lab.run import LabError, in_netns, run
from appliance.lab.state import LabState


def pi_dir(lab: Path, pi: Pi) -> Path:
    return lab / "pis" / pi.host


def mount_overlay(lab: Path, pi: Pi, rootfs: Path, state: LabState) -> Path:
    """Mount a fresh writable overlay (lower: the cached image, kept pristine); return it."""
    base = pi_dir(lab, pi)
    upper, work, merged = base / "upper", base / "work", base / "merged"
    for path in (upper, work, merged):
        path.mkdir(parents=True, exist_ok=True)
    state.add("mounts", str(merged))
    run(
        [
            "mount",
            "-t",
            "overlay",
            f"pa-lab-{pi.host}",
            "-o",
            f"lowerdir={rootfs},upperdir={upper},workdir={work}",
            merged,
        ]
    )
    return merged


def lab_overlay_mounts() -> list[str]:
    """Overlay mounts whose lower layer is a cached lab image (found even without a state file)."""
    points = []
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "overlay" and f"lowerdir={CACHE_ROOT}/" in fields[3]:
            points.append(fields[1])
    return points


def unmount(point: str) -> None:
    """Unmount POINT and everything below it (lazily if it is busy)."""
    for sub in sorted(mounts_under(point), key=len, reverse=True):
        if run(["umount", sub], check=False).returncode != 0:
            run(["umount", "-l", sub], check=False)


def personalise(merged: Path, pi: Pi, public_key: str) -> None:
    """Per-lab identity written into the overlay, never into the shared image: host name,
    machine id, SSH host keys and the pi user's authorized key."""
    (merged / "etc/hostname").write_text(f"{pi.host}\n")
    hosts = merged / "etc/hosts"
    hosts.write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{pi.host}\n::1\tlocalhost ip6-localhost\n")
    # Like a Pi configured by the home router's DHCP: DNS is the router (nothing answers in
    # the lab, so lookups fail fast instead of leaving the lab's addresses).
    (merged / "etc/resolv.conf").write_text(f"nameserver {LAN_GATEWAY}\n")
    (merged / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    run(["ssh-keygen", "-q", "-A", "-f", merged], timeout=60)
    uid, gid = _pi_ids(merged)
    ssh = merged / "home/pi/.ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    keys = ssh / "authorized_keys"
    keys.write_text(public_key)
    keys.chmod(0o600)
    for path in (ssh, keys):
        os.chown(path, uid, gid)
    install_overlay_files(merged, pi)


def overlay_assets() -> Path:
    """Files written into every Pi at `lab up` (not part of the image or its hash)."""
    return Path(str(resources.files("appliance.lab") / "overlay"))


def install_overlay_files(merged: Path, pi: Pi) -> None:
    """The lab's radio stand-in and its station table (camera MAC -> its port on the Pi)."""
    root = overlay_assets()
    for path in sorted(root.rglob("*")):
        if path.is_dir() or path.name == "README.md":
            continue
        dest = merged / path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        # Package data may lose its mode on install: scripts are those under sbin/.
        dest.chmod(0o755 if "sbin" in path.parts else 0o644)
    table = merged / "etc/presence-lab/stations"
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("".join(f"{cam.mac} {cam.pi_port}\n" for cam in pi.cameras))


def _pi_ids(merged: Path) -> tuple[int, int]:
    for line in (merged / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "pi":
            return int(fields[2]), int(fields[3])
    raise LabError(f"{merged}/etc/passwd: no pi user in the lab image")


def boot(lab: Path, pi: Pi, merged: Path, state: LabState) -> int:
    """Start systemd-nspawn (recorded) and return the PID of the container's systemd."""
    cmd = [
        "systemd-nspawn",
        "-D",
        str(merged),
        "--boot",
        "--register=no",
        "--keep-unit",
        "--console=passive",
        "--resolv-conf=off",
        f"--hostname={pi.host}",
        f"--machine=pa-{pi.host}",
        f"--network-namespace-path=/run/netns/{pi.netns}",
        # With --network-namespace-path, --private-network keeps that namespace but gives the
        # container CAP_NET_ADMIN (nftables, ip_forward). Never CAP_SYS_TIME: host clock.
        "--private-network",
    ]
    pid = spawn(cmd, lab / "logs" / f"{pi.host}-console.log")
    state.add_process(f"nspawn-{pi.host}", pid)
    leader = _wait_leader(pid, timeout=30)
    state.data.setdefault("leaders", {})[pi.host] = leader
    state.save()
    return leader


def _wait_leader(nspawn_pid: int, timeout: float) -> int:
    """The container's PID 1 is nspawn's child running in another PID namespace."""
    own = os.readlink("/proc/self/ns/pid")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
        except OSError as err:
            raise LabError(f"systemd-nspawn exited at start: see {_log_hint()}") from err
        for child in children:
            try:
                if os.readlink(f"/proc/{child}/ns/pid") != own:
                    return int(child)
            except OSError:
                continue
        time.sleep(0.1)
    raise LabError(f"the container did not start within {timeout:.0f} s: see {_log_hint()}")


def _log_hint() -> str:
    return "lab/logs/*-console.log"


def wait_booted(leader: int, timeout: float = 90) -> str:
    """Wait for the container's systemd to finish booting; return running/degraded."""
    deadline = time.monotonic() + timeout
    status = "unknown"
    while time.monotonic() < deadline:
        # Right after start the container's bus is not up yet: poll instead of --wait.
        result = run(
            ["nsenter", "-t", str(leader), "-a", "systemctl", "is-system-running"],
            check=False,
            timeout=15,
        )
        status = result.stdout.strip() or "unknown"
        if status in ("running", "degraded"):
            return status
        time.sleep(0.3)
    raise LabError(f"the Pi did not boot within {timeout:.0f} s (is-system-running: {status})")


def wait_ssh(pi: Pi, key: Path, lan_ns: str, timeout: float = 30) -> None:
    """Wait until `ssh pi@<eth0>` from the home network works with the lab's key."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        result = run(
            in_netns(
                lan_ns,
                "ssh",
                "-i",
                str(key),
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=3",
                "-o",
                "LogLevel=ERROR",
                f"pi@{pi.address}",
                "sudo",
                "-n",
                "true",
            ),
            check=False,
            timeout=15,
        )
        if result.returncode == 0:
            return
        last = (result.stderr.strip().splitlines() or [""])[-1]
        time.sleep(0.5)
    raise LabError(f"ssh pi@{pi.address} from the home network failed: {last}")


def container_exec(leader: int, *cmd: str, timeout: float = 60) -> list[str]:
    """Argument list that runs CMD as a transient unit of the container's own systemd
    (so it gets the container's capabilities, unlike plain `nsenter -a`)."""
    return [
        "timeout",
        str(int(timeout)),
        "nsenter",
        "-t",
        str(leader),
        "-a",
        "systemd-run",
        "--quiet",
        "--wait",
        "--pipe",
        "--collect",
        *cmd,
    ]
