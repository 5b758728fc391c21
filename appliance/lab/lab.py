"""`lab up` / `lab down` / `lab status`: bring the whole lab up and take every piece down again."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from appliance.lab import image, network, phone, wan
from appliance.lab import pi as pis_mod
from appliance.lab import plan as topo
from appliance.lab.camera_agent import read_lease
from appliance.lab.hlsjs import local_hlsjs
from appliance.lab.inventory import WEB_USER, build_inventory, write_inventory
from appliance.lab.plan import LabPlan, make_plan
from appliance.lab.proc import is_running, netns_pids, spawn, stop_pids, stop_recorded
from appliance.lab.run import LabError, in_netns, require_root, require_tools, run
from appliance.lab.secrets_store import ensure_ssh_key, load_secrets
from appliance.lab.state import LabState, alive, ensure_private_dir, lab_dir

Progress = Callable[[str], None]
LOCK = Path("/run/presence-appliance-lab.lock")
# Which runtime directory the machine's lab belongs to: the namespaces are global, so there
# is one lab per machine, whichever directory `lab up` ran in.
OWNER = Path("/run/presence-appliance-lab.owner")
# Held by a pytest session using the lab (tests/e2e/conftest.py); its own calls set
# PA_LAB_TEST_SESSION. Anyone else's `up`/`down` must not pull the lab from under it.
SESSION_LOCK = Path("/run/presence-appliance-lab.session.lock")

# tool -> Debian package that provides it
TOOLS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "nsenter": "util-linux",
    "ip": "iproute2",
    "bridge": "iproute2",
    "nft": "nftables",
    "chronyd": "chrony",
    "udhcpc": "udhcpc",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One lab per machine (the namespace names are global): serialise up and down."""
    if not os.environ.get("PA_LAB_TEST_SESSION") and _held(SESSION_LOCK):
        raise LabError(f"a test session is using the lab (lock {SESSION_LOCK}): wait for it to end")
    with open(LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise LabError(f"another `lab up`/`lab down` is running (lock {LOCK})") from err
        yield


def hold_within(handle: IO[str], seconds: float, waiting: Callable[[], None]) -> bool:
    """flock HANDLE (the session lock) exclusively, waiting at most SECONDS for whoever holds
    it; WAITING is called once when it has to wait. False when the wait ran out.

    A blocking flock (bounded by an alarm), not polling: the kernel wakes a blocked waiter
    the moment the holder lets go, so a waiting session is not starved by others polling.
    """
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        waiting()

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(max(1, int(seconds)))
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
    except TimeoutError:
        return False
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return True


def _held(lock: Path) -> bool:
    """True when another process holds the flock on LOCK."""
    if not lock.exists():
        return False
    with open(lock) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def plan_from_state(state: LabState) -> LabPlan | None:
    """The plan of the lab described by STATE, None when there is none."""
    saved = state.data.get("plan")
    if not saved:
        return None
    return make_plan(saved["pis"], saved["cameras"], saved["release"], saved["isolation"])


def is_up(state: LabState) -> bool:
    """True when a completed `up` is recorded and all its Pis still run."""
    plan = plan_from_state(state)
    if not plan or not state.data.get("complete"):
        return False
    return all(
        (proc := state.process(f"nspawn-{pi.host}")) is not None and alive(proc) for pi in plan.pis
    )


def has_leftovers(state: LabState) -> bool:
    """Anything of a lab exists: a state file, a `pa-*` namespace, an overlay, the host link."""
    return bool(
        state.path.exists()
        or network.lab_namespaces()
        or pis_mod.lab_overlay_mounts()
        or run(["ip", "link", "show", topo.HOST_LINK], check=False).returncode == 0
    )


def up(
    cameras: int = 2,
    pis: int = 1,
    release: str = "bookworm",
    isolation: str = "ap_isolate",
    progress: Progress = print,
    network_manager: bool = False,
) -> dict[str, Any]:
    """Build the image if needed and start everything; return a summary (times, paths).

    NETWORK_MANAGER: the image variant where NetworkManager manages wlan0, as on a stock
    Raspberry Pi OS (image.VARIANTS["nm"]).
    """
    require_root()
    require_tools(TOOLS)
    try:
        plan = make_plan(pis, cameras, release, isolation)
    except ValueError as err:
        raise LabError(str(err)) from err
    started = time.monotonic()
    lab = ensure_private_dir(lab_dir())
    with _locked():
        state = LabState.load(lab)
        if is_up(state):
            progress(f"the lab is already up ({lab}/inventory.yml); `lab down` first to rebuild")
            return {"already_up": True, "inventory": str(lab / "inventory.yml")}
        other = _owner()
        if other and other != lab and is_up(LabState.load(other)):
            raise LabError(
                f"a lab from {other} is up: take it down first "
                f"(PA_LAB_DIR={other} presence-appliance lab down)"
            )
        if has_leftovers(state) or other:
            progress("removing what a previous lab left ...")
            _down(lab, state, progress)
        OWNER.write_text(f"{lab}\n")
        secrets = load_secrets(lab, [c.name for c in plan.cameras])
        key = ensure_ssh_key(lab)
        rootfs = image.ensure_image(release, progress, "nm" if network_manager else "")
        build_done = time.monotonic()
        state = LabState(lab / "state.json", {"processes": [], "mounts": [], "namespaces": []})
        state.data.update(
            plan={
                "pis": pis,
                "cameras": cameras,
                "release": release,
                "isolation": isolation,
                "network_manager": network_manager,
            },
            image=str(rootfs),
            started=time.time(),
            complete=False,
            pid=os.getpid(),
        )
        state.save()
        progress("network: pa-lan (home), pa-wan (internet), host link pa-host ...")
        network.build_core(state)
        wan.start_wan(lab, state)
        network.build_phone(state)
        for pi in plan.pis:
            network.build_pi_network(pi, plan, state)
            for cam in pi.cameras:
                network.build_camera_link(cam, pi, plan, state)
        network.forward_wireguard(plan.pis[0])
        leaders = {}
        public_key = key.with_suffix(".pub").read_text()
        for pi in plan.pis:
            progress(f"{pi.host}: booting {release} in {pi.netns} (eth0 {pi.address}) ...")
            merged = pis_mod.mount_overlay(lab, pi, rootfs, state)
            pis_mod.personalise(merged, pi, public_key)
            leaders[pi.host] = pis_mod.boot(lab, pi, merged, state)
        (lab / "cameras").mkdir(exist_ok=True)
        for cam in plan.cameras:
            pid = spawn(
                in_netns(
                    cam.netns,
                    sys.executable,
                    "-m",
                    "appliance.lab.camera_agent",
                    "--lab",
                    str(lab),
                    "--name",
                    cam.name,
                ),
                lab / "logs" / f"{cam.name}.log",
            )
            state.add_process(f"camera-{cam.name}", pid, cam.netns)
        inventory = lab / "inventory.yml"
        hlsjs = local_hlsjs()
        if hlsjs is None:
            progress("hls.js not available locally: the web role will say how to provide it")
        write_inventory(inventory, build_inventory(plan, secrets, key, hlsjs))
        for pi in plan.pis:
            status = pis_mod.wait_booted(leaders[pi.host])
            pis_mod.wait_ssh(pi, key, topo.LAN_NS)
            progress(f"{pi.host}: booted ({status}), ssh pi@{pi.address} works")
        state.data["complete"] = True
        state.save()
    total = time.monotonic() - started
    progress(
        f"lab up in {total:.1f} s (image {build_done - started:.1f} s); inventory: {inventory}"
    )
    return {
        "already_up": False,
        "seconds": total,
        "image_seconds": build_done - started,
        "inventory": str(inventory),
    }


def down(progress: Progress = print) -> float:
    """Remove every namespace, veth, mount and process of the lab; safe to run any time."""
    require_root()
    started = time.monotonic()
    lab = lab_dir()
    with _locked():
        _down(lab, LabState.load(lab), progress)
    return time.monotonic() - started


def _owner() -> Path | None:
    try:
        return Path(OWNER.read_text().strip())
    except OSError:
        return None


def running_lab() -> tuple[Path, LabState] | None:
    """The runtime directory and state of the machine's lab when one is up, else None.

    Whichever directory `lab up` ran in: a test session uses it to find the user's demo lab.
    """
    owner = _owner()
    if owner is None:
        return None
    state = LabState.load(owner)
    return (owner, state) if is_up(state) else None


def _down(lab: Path, state: LabState, progress: Progress) -> None:
    """Take down the machine's lab: ours and, if another directory owns it, that one too."""
    other = _owner()
    removed = False
    if other and other != lab:
        removed = _down_one(other, LabState.load(other), progress)
    removed = _down_one(lab, state, progress) or removed
    OWNER.unlink(missing_ok=True)
    if not removed:
        progress("lab down: nothing to remove")


def _down_one(lab: Path, state: LabState, progress: Progress) -> bool:
    """Take down the lab recorded in LAB (plus anything named like the lab); True if any."""
    # 1. Ask each Pi to power off (nspawn turns SIGTERM into an orderly shutdown) while
    #    the other recorded processes are stopped.
    nspawns = [p for p in state.data["processes"] if p["role"].startswith("nspawn-") and alive(p)]
    for proc in nspawns:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc["pid"], 15)
    others = [p for p in state.data["processes"] if not p["role"].startswith("nspawn-")]
    for proc in others:
        stop_recorded(proc, timeout=3)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(p) for p in nspawns):
        time.sleep(0.2)
    for proc in nspawns:
        stop_recorded(proc, timeout=2)
    # 2. Whatever still runs inside the lab's namespaces (found by name, not the state file).
    namespaces = sorted(set(network.lab_namespaces()) | set(state.data["namespaces"]))
    for netns in namespaces:
        stop_pids(netns_pids(netns), timeout=3)
    # 3. Overlays (recorded, and any overlay over a cached lab image), then links and namespaces.
    for point in sorted(set(state.data["mounts"]) | set(pis_mod.lab_overlay_mounts())):
        pis_mod.unmount(point)
    network.remove_host_link()
    for netns in namespaces:
        network.delete_namespace(netns)
    # The phone's wireguard-go is gone (step 2); a hard kill would have left its socket.
    phone.SOCKET.unlink(missing_ok=True)
    builds = image.cleanup_builds()
    for directory in (lab / "pis", lab / "cameras", lab / "wan", lab / "phone", lab / "ssh" / "cp"):
        if directory.is_dir() and not any(
            m.startswith(str(directory)) for m in _all_mount_points()
        ):
            shutil.rmtree(directory, ignore_errors=True)
    (lab / "inventory.yml").unlink(missing_ok=True)
    state.remove()
    if builds:
        progress(f"lab down: removed {builds} interrupted image build(s)")
    if namespaces or state.data.get("plan"):
        progress(f"lab down: removed {len(namespaces)} namespaces")
    return bool(builds or namespaces or state.data.get("plan"))


def _all_mount_points() -> list[str]:
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]


def current_lab() -> tuple[Path, LabState]:
    """This directory's lab, or the machine's lab when it was brought up from elsewhere."""
    lab = lab_dir()
    state = LabState.load(lab)
    owner = _owner()
    if owner and owner != lab and not state.path.exists():
        return owner, LabState.load(owner)
    return lab, state


def status() -> dict[str, Any]:
    """What is up: Pis (booted state), cameras (leases), wan NTP, leftovers."""
    require_root()
    lab, state = current_lab()
    plan = plan_from_state(state)
    result: dict[str, Any] = {
        "lab_dir": str(lab),
        "up": is_up(state),
        "namespaces": network.lab_namespaces(),
        "overlays": pis_mod.lab_overlay_mounts(),
        "pis": [],
        "cameras": [],
    }
    if not plan:
        return result
    for pi in plan.pis:
        leader = state.data.get("leaders", {}).get(pi.host)
        system = "stopped"
        if leader and is_running(leader):
            out = run(
                ["nsenter", "-t", str(leader), "-a", "systemctl", "is-system-running"],
                check=False,
                timeout=15,
            )
            system = out.stdout.strip() or "unknown"
        result["pis"].append(
            {
                "host": pi.host,
                "netns": pi.netns,
                "address": pi.address,
                "leader": leader,
                "system": system,
            }
        )
    for cam in plan.cameras:
        lease = read_lease(lab, cam.name)
        result["cameras"].append(
            {
                "name": cam.name,
                "netns": cam.netns,
                "mac": cam.mac,
                "reserved_ip": cam.ip,
                "lease_ip": lease and lease.get("ip"),
            }
        )
    result["wan_ntp"] = wan.ntp_running(state)
    return result


def leader_pid(host: str = "pi") -> int:
    """PID (host view) of the container's systemd for Pi HOST (`pi`, `pi2`, `lab-pi2`)."""
    _, state = current_lab()
    plan = plan_from_state(state)
    if not plan:
        raise LabError("the lab is not up: run `presence-appliance lab up`")
    try:
        pi = plan.pi(host)
    except KeyError as err:
        raise LabError(f"no Pi called {host!r} in the lab") from err
    leader = state.data.get("leaders", {}).get(pi.host)
    if not leader or not is_running(leader):
        raise LabError(f"{pi.host} is not running: run `presence-appliance lab up`")
    return int(leader)


def shell_argv(target: str, cmd: list[str]) -> list[str]:
    """The argument list for `lab shell TARGET [-- CMD]`."""
    require_root()
    _, state = current_lab()
    plan = plan_from_state(state)
    if not plan:
        raise LabError("the lab is not up: run `presence-appliance lab up`")
    if target == "pi" or target.startswith(("pi", "lab-pi")):
        leader = leader_pid(target)
        return ["nsenter", "-t", str(leader), "-a", *(cmd or ["/bin/bash", "-l"])]
    namespaces = {"lan": topo.LAN_NS, "wan": topo.WAN_NS, "phone": topo.PHONE_NS}
    namespaces.update({f"cam-{c.name}": c.netns for c in plan.cameras})
    if target not in namespaces:
        raise LabError(
            f"lab shell {target}: choose one of pi, lan, wan, phone, "
            + ", ".join(f"cam-{c.name}" for c in plan.cameras)
        )
    return in_netns(namespaces[target], *(cmd or [os.environ.get("SHELL", "/bin/bash")]))


def info() -> dict[str, Any]:
    """How to reach the dashboards from the host, and the lab's web login."""
    require_root()
    lab, state = current_lab()
    plan = plan_from_state(state)
    if not plan:
        raise LabError("the lab is not up: run `presence-appliance lab up`")
    secrets = load_secrets(lab, [c.name for c in plan.cameras])
    return {
        "dashboards": [f"https://{pi.address}/" for pi in plan.pis],
        "user": WEB_USER,
        "password": secrets["web_password"],
        "inventory": str(lab / "inventory.yml"),
        "ssh_key": str(lab / "ssh" / "id_ed25519"),
    }
