"""Build and cache the lab's Debian root filesystem (debootstrap + the roles' packages)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from appliance.lab.run import LabError, run, stop_recorded_group

CACHE_ROOT = Path(os.environ.get("PA_LAB_CACHE", "/var/cache/presence-appliance/lab"))
RELEASES = ("bookworm", "trixie")

# Bump when the build steps below change in a way the package list and assets do not show.
RECIPE_VERSION = "2"

# What the roles install: the container has no route to the mirror, so everything the
# roles' package tasks ask for must already be in the image.
PACKAGES = [
    "python3",
    "python3-apt",
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "sudo",
    "iproute2",
    "iputils-ping",
    "ca-certificates",
    "hostapd",
    "dnsmasq",
    "chrony",
    "nginx-light",
    "nftables",
    "openssl",
    "iw",
    "rfkill",
    "apache2-utils",
    # firewall logging (NFLOG -> JSON lines), login ban, the WireGuard way home (the lab's
    # kernel has no WireGuard module: wireguard-go stands in, see appliance/lab/README.md)
    "ulogd2",
    "ulogd2-json",
    "fail2ban",
    "wireguard-tools",
    "wireguard-go",
    # recordings (issue 15): the cameras' FTP export target and its password-file PAM module
    "vsftpd",
    "libpam-pwdfile",
]

# A package a release no longer has, and what stands for it there (trixie dropped the
# nginx-light/-full/-extras flavours: its `nginx` is the one server, modules apart).
RENAMED = {"trixie": {"nginx-light": "nginx"}}

# Image variants (`lab up --network-manager`): more packages and files over the same recipe,
# in an image of their own, so the default image (and its key) stays as it is.
# "nm": NetworkManager manages the camera interface, as on a stock Raspberry Pi OS.
VARIANTS = {"nm": ["network-manager"]}

Progress = Callable[[str], None]


def assets_dir(variant: str = "") -> Path:
    """The files copied over the image (unit drop-ins, the hostapd stand-in); a variant's
    own files are in `image-<variant>/`, copied after those."""
    name = f"image-{variant}" if variant else "image"
    return Path(str(resources.files("appliance.lab") / name))


def packages(release: str, variant: str = "") -> list[str]:
    """What the image for RELEASE (and VARIANT) installs."""
    renamed = RENAMED.get(release, {})
    return [renamed.get(p, p) for p in PACKAGES] + VARIANTS.get(variant, [])


def _hash_tree(digest: Any, root: Path) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(root)}\0{path.stat().st_mode & 0o777:o}\0".encode())
        digest.update(path.read_bytes())


def image_key(release: str, variant: str = "") -> str:
    """A hash of everything that determines the image's content."""
    digest = hashlib.sha256()
    digest.update(f"{RECIPE_VERSION}\0{release}\0{' '.join(packages(release))}\0".encode())
    _hash_tree(digest, assets_dir())
    if variant:  # nothing is added for the default image: its key stays what it was
        digest.update(f"variant\0{variant}\0{' '.join(VARIANTS[variant])}\0".encode())
        _hash_tree(digest, assets_dir(variant))
    return digest.hexdigest()[:12]


def image_name(release: str, variant: str = "") -> str:
    return f"{release}-{variant}-" if variant else f"{release}-"


def image_dir(release: str, variant: str = "") -> Path:
    """Where the image for RELEASE lives (its rootfs is `<dir>/rootfs`)."""
    return CACHE_ROOT / f"{image_name(release, variant)}{image_key(release, variant)}"


def is_built(release: str, variant: str = "") -> bool:
    """True when a complete image for RELEASE is cached."""
    return (image_dir(release, variant) / "image.json").is_file()


def debian_mirror(sources: Path = Path("/etc/apt/sources.list.d/debian.sources")) -> str:
    """The Debian mirror the host's apt uses (PA_LAB_MIRROR overrides it)."""
    if os.environ.get("PA_LAB_MIRROR"):
        return os.environ["PA_LAB_MIRROR"]
    if sources.is_file():
        for stanza in sources.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line and line[0] != "#"
            )
            uris = fields.get("URIs", "").split()
            suites = fields.get("Suites", "").split()
            if uris and not any(s.endswith("-security") for s in suites):
                return uris[0]
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in parts[2]:
                return parts[1]
    raise LabError(f"{sources}: no Debian mirror found (set PA_LAB_MIRROR to one)")


def ensure_image(release: str, progress: Progress, variant: str = "") -> Path:
    """Return the cached rootfs for RELEASE, building it first when it is missing."""
    if release not in RELEASES:
        raise LabError(f"--release {release}: choose one of {', '.join(RELEASES)}")
    if variant and variant not in VARIANTS:
        raise LabError(f"image variant {variant}: choose one of {', '.join(VARIANTS)}")
    target = image_dir(release, variant)
    if is_built(release, variant):
        progress(f"image {target.name}: cached")
        return target / "rootfs"
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    cleanup_builds()
    build = CACHE_ROOT / f".build-{target.name}"
    started = time.monotonic()
    try:
        _build(release, build / "rootfs", progress, variant)
        (build / "image.json").write_text(
            json.dumps(
                {
                    "release": release,
                    "variant": variant,
                    "key": image_key(release, variant),
                    "packages": packages(release, variant),
                    "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "build_seconds": round(time.monotonic() - started, 1),
                },
                indent=2,
            )
        )
        if target.exists():
            shutil.rmtree(target)
        build.rename(target)
    finally:
        cleanup_builds()
    _prune_old(release, variant, keep=target)
    progress(f"image {target.name}: built in {time.monotonic() - started:.0f} s")
    return target / "rootfs"


def _prune_old(release: str, variant: str, keep: Path) -> None:
    """Drop stale images of RELEASE and VARIANT (older recipe or package list) that no
    overlay uses; other variants' images stay."""
    in_use = Path("/proc/mounts").read_text()
    same = re.compile(re.escape(image_name(release, variant)) + "[0-9a-f]{12}")
    for old in CACHE_ROOT.iterdir():
        if same.fullmatch(old.name) and old != keep and f"lowerdir={old}/" not in in_use:
            shutil.rmtree(old, ignore_errors=True)


def cleanup_builds() -> int:
    """Remove half-built images (an interrupted build), unmounting what they had mounted."""
    if not CACHE_ROOT.is_dir():
        return 0
    builds = list(CACHE_ROOT.glob(".build-*"))
    for build in builds:
        # A build whose `lab up` was killed: stop what it still runs before removing it.
        stop_recorded_group(build / "builder.pid")
        _unmount_under(build)
        shutil.rmtree(build, ignore_errors=True)
    return len(builds)


def _build(release: str, rootfs: Path, progress: Progress, variant: str = "") -> None:
    mirror = debian_mirror()
    rec = rootfs.parent / "builder.pid"
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    progress(f"debootstrap {release} (minbase) ...")
    run(["debootstrap", "--variant=minbase", release, rootfs, mirror], timeout=900, record=rec)
    policy = rootfs / "usr/sbin/policy-rc.d"
    # Services must not start inside the build chroot; removed again before the image is used.
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    _mount_chroot(rootfs)
    try:
        env = {
            "DEBIAN_FRONTEND": "noninteractive",
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LC_ALL": "C",
        }
        progress("apt-get update in the image ...")
        run(["chroot", rootfs, "apt-get", "update", "-q"], timeout=600, env=env, record=rec)
        wanted = packages(release, variant)
        progress(f"installing {len(wanted)} packages in the image ...")
        run(
            [
                "chroot",
                rootfs,
                "apt-get",
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                *wanted,
            ],
            timeout=1800,
            env=env,
            record=rec,
        )
        run(["chroot", rootfs, "apt-get", "clean"], env=env, record=rec)
        # A fresh package cache, so roles whose apt tasks use cache_valid_time need no network.
        run(["chroot", rootfs, "apt-get", "update", "-q"], timeout=600, env=env, record=rec)
        progress("adding the pi user ...")
        run(
            [
                "chroot",
                rootfs,
                "useradd",
                "--create-home",
                "--shell",
                "/bin/bash",
                "--groups",
                "sudo",
                "pi",
            ],
            env=env,
            record=rec,
        )
        sudoers = rootfs / "etc/sudoers.d/010_pi-nopasswd"
        sudoers.write_text("pi ALL=(ALL) NOPASSWD: ALL\n")
        sudoers.chmod(0o440)
        run(
            ["chroot", rootfs, "visudo", "-cf", "/etc/sudoers.d/010_pi-nopasswd"],
            env=env,
            record=rec,
        )
    finally:
        _unmount_under(rootfs)
        policy.unlink(missing_ok=True)
    # Timers that would reach for the network or hold the dpkg lock while a role installs.
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        (rootfs / "etc/systemd/system/timers.target.wants" / timer).unlink(missing_ok=True)
    # A Pi gets vsftpd only with recordings on, and the recordings role enables it then: the
    # package's own (every address, system users) server never runs in the lab.
    (rootfs / "etc/systemd/system/multi-user.target.wants/vsftpd.service").unlink(missing_ok=True)
    # debootstrap copied the build host's resolver; each Pi gets the lab's at `lab up`.
    (rootfs / "etc/resolv.conf").write_text("# written per Pi by `presence-appliance lab up`\n")
    # Host keys and machine id are made per lab at `lab up`, never shared through the image.
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (rootfs / "etc/machine-id").write_text("")
    (rootfs / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    _copy_assets(rootfs, assets_dir())
    if variant:
        _copy_assets(rootfs, assets_dir(variant))


def _copy_assets(rootfs: Path, root: Path) -> None:
    for path in sorted(root.rglob("*")):
        dest = rootfs / path.relative_to(root)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        else:
            shutil.copyfile(path, dest)
            # Package data may lose its mode on install: scripts are those under sbin/;
            # NetworkManager ignores a connection profile that others may read.
            mode = 0o644
            if "sbin" in path.parts:
                mode = 0o755
            elif "system-connections" in path.parts:
                mode = 0o600
            dest.chmod(mode)


def _mount_chroot(rootfs: Path) -> None:
    run(["mount", "-t", "proc", "proc", rootfs / "proc"])
    run(["mount", "--bind", "/dev", rootfs / "dev"])
    run(["mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666", "devpts", rootfs / "dev/pts"])


def _unmount_under(path: Path) -> None:
    """Unmount every mount point at or below PATH, deepest first."""
    prefix = str(path.resolve())
    for point in sorted(mounts_under(prefix), key=len, reverse=True):
        if run(["umount", point], check=False).returncode != 0:
            run(["umount", "-l", point], check=False)


def mounts_under(prefix: str) -> list[str]:
    """Mount points (from /proc/mounts) equal to or below PREFIX."""
    points = []
    for line in Path("/proc/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
            points.append(point)
    return points
