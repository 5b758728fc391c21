#!/usr/bin/python3
"""Record how the Pi was before the first install; return it to that state (presence-uninstall).

Run on the Pi by Ansible's `script` module (nothing of it stays installed), as root:

  record --spec JSON      once, before the first install changes anything: for every path the
                          roles may write, whether it existed (and a copy of it); the enabled,
                          masked and active state of every unit they touch; which of their
                          packages were installed; the sysctls they set; which Wi-Fi radios
                          were soft-blocked (rfkill); whether NetworkManager managed the camera
                          interface. Writes DIR/before.json (root-only) and
                          never overwrites it: later installs leave the first record alone.
  uninstall --spec JSON [--purge]
                          put every recorded file back (or remove it when it did not exist),
                          return units to their recorded state, delete the firewall's nft table,
                          restore the sysctls, soft-block again the Wi-Fi radios that were
                          (the access_point role unblocks them), give the camera interface back
                          to NetworkManager,
                          with --purge remove the packages that were not installed before; then
                          remove the record itself. Prints JSON: what it did.

Exit 0 on success, 1 with one line on stderr when something is refused, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

RECORD = "before.json"
COPIES = "before"
TIMEOUT = 120
PURGE_TIMEOUT = 900
ACTIVE = ("active", "reloading", "activating")
UNIT_DIRS = ("/etc/systemd/", "/lib/systemd/", "/usr/lib/systemd/")
RFKILL_DIR = "/sys/class/rfkill"


class Refused(Exception):
    """A one-line reason to stop without changing anything."""


# ---- what is there now -------------------------------------------------------------------


def digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(65536), b""):
            sha.update(block)
    return sha.hexdigest()


def path_state(path: str) -> dict[str, Any]:
    """A file, symlink or directory as it is now (absent: {"present": False})."""
    if os.path.islink(path):
        return {"present": True, "kind": "link", "target": os.readlink(path)}
    if os.path.isdir(path):
        return {"present": True, "kind": "dir"}
    if not os.path.isfile(path):
        return {"present": False}
    info = os.stat(path)
    return {
        "present": True,
        "kind": "file",
        "sha256": digest(path),
        "mode": info.st_mode & 0o7777,
        "uid": info.st_uid,
        "gid": info.st_gid,
    }


def managed_paths(spec: dict[str, Any]) -> list[str]:
    """The files the roles may write: the fixed ones and what the patterns match now."""
    found = list(spec.get("files", []))
    for pattern in spec.get("patterns", []):
        found += sorted(glob.glob(pattern))
    return sorted(set(found))


def run(argv: list[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def unit_states(units: list[str]) -> dict[str, dict[str, str]]:
    """unit -> {load, file, active} from systemd (a unit systemd does not know: load not-found)."""
    states: dict[str, dict[str, str]] = {}
    for unit in units:
        shown = run(
            [
                "systemctl",
                "show",
                "-p",
                "LoadState",
                "-p",
                "UnitFileState",
                "-p",
                "ActiveState",
                unit,
            ]
        )
        fields = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
        states[unit] = {
            "load": fields.get("LoadState", "not-found"),
            "file": fields.get("UnitFileState", ""),
            "active": fields.get("ActiveState", "inactive"),
        }
    return states


def installed_packages(packages: list[str]) -> dict[str, bool]:
    found: dict[str, bool] = {}
    for package in packages:
        query = run(["dpkg-query", "-W", "-f", "${db:Status-Status}", package])
        found[package] = query.returncode == 0 and query.stdout.strip() == "installed"
    return found


def accounts(names: list[str]) -> dict[str, dict[str, bool]]:
    """name -> whether a user and a group of that name exist."""
    return {
        name: {
            "user": run(["getent", "passwd", name]).returncode == 0,
            "group": run(["getent", "group", name]).returncode == 0,
        }
        for name in names
    }


def account_plan(
    before: dict[str, dict[str, bool]], now: dict[str, dict[str, bool]]
) -> list[list[str]]:
    """userdel/groupdel argument lists for the accounts the roles created."""
    steps = []
    for name in sorted(now):
        was = before.get(name, {"user": True, "group": True})  # unknown: never delete
        if now[name]["user"] and not was["user"]:
            steps.append(["userdel", name])
        if now[name]["group"] and not was["group"]:
            steps.append(["groupdel", name])
    return steps


def sysctl_path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


def sysctl_values(names: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name in names:
        try:
            with open(sysctl_path(name), encoding="ascii") as handle:
                values[name] = handle.read().strip()
        except OSError:
            pass  # not on this kernel: nothing to restore
    return values


def read_text(path: str) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read().strip()


def wifi_radios(rfkill_dir: str) -> list[tuple[str, str, bool]]:
    """(sysfs directory, name such as phy0, soft-blocked) of each Wi-Fi radio rfkill knows.

    Stock Raspberry Pi OS keeps Wi-Fi soft-blocked until a country is set, and the
    access_point role unblocks it. sysfs is read (and written) directly, so this works
    without the rfkill package, which `--purge` may remove.
    """
    found = []
    for device in sorted(glob.glob(os.path.join(rfkill_dir, "rfkill*"))):
        try:
            kind, name, soft = (
                read_text(os.path.join(device, a)) for a in ("type", "name", "soft")
            )
        except OSError:
            continue  # gone meanwhile (a USB adapter pulled): nothing to record
        if kind == "wlan":
            found.append((device, name, soft == "1"))
    return found


def soft_block(rfkill_dir: str, names: set[str]) -> list[str]:
    """Soft-block the Wi-Fi radios called NAMES that are unblocked now; return their names."""
    done = []
    for device, name, blocked in wifi_radios(rfkill_dir):
        if name in names and not blocked:
            with open(os.path.join(device, "soft"), "w", encoding="ascii") as handle:
                handle.write("1\n")
            done.append(name)
    return done


def nm_managed(interface: str) -> bool | None:
    """Whether NetworkManager manages INTERFACE (None: no NetworkManager, or it is not running)."""
    if not interface or not shutil.which("nmcli"):
        return None
    shown = run(["nmcli", "-t", "-f", "DEVICE,STATE", "device"])
    if shown.returncode != 0:
        return None
    for line in shown.stdout.splitlines():
        device, _, state = line.rpartition(":")
        if device == interface:
            return not state.startswith("unmanaged")
    return None


# ---- record -------------------------------------------------------------------------------


def record(spec: dict[str, Any]) -> dict[str, Any]:
    """Write DIR/before.json and the copies, once; later calls change nothing."""
    base = spec["dir"]
    target = os.path.join(base, RECORD)
    if os.path.exists(target):
        return {"recorded": False, "record": target}
    # A Pi provisioned by a version that kept no record: its "before" is already ours.
    earlier = [p for p in spec.get("earlier_install_signs", []) if os.path.lexists(p)]
    paths: dict[str, Any] = {}
    for path in managed_paths(spec) + list(spec.get("dirs", [])):
        paths[path] = path_state(path)
    os.makedirs(base, mode=0o755, exist_ok=True)
    partial = os.path.join(base, COPIES + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial, mode=0o700)
    for path, state in paths.items():
        if state.get("kind") == "file":
            copy = os.path.join(partial, path.lstrip("/"))
            os.makedirs(os.path.dirname(copy), mode=0o700, exist_ok=True)
            shutil.copyfile(path, copy)
            os.chmod(copy, 0o600)
    before = {
        "version": 1,
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "earlier_install": earlier,
        "paths": paths,
        "patterns": list(spec.get("patterns", [])),
        "units": unit_states(list(spec.get("units", []))),
        "packages": installed_packages(list(spec.get("packages", []))),
        "sysctls": sysctl_values(list(spec.get("sysctls", []))),
        "wifi_soft_blocked": {
            name: blocked for _, name, blocked in wifi_radios(spec.get("rfkill_dir", RFKILL_DIR))
        },
        "accounts": accounts(list(spec.get("accounts", []))),
        "network_manager": {
            "interface": spec.get("interface", ""),
            "managed": nm_managed(spec.get("interface", "")),
        },
    }
    shutil.rmtree(os.path.join(base, COPIES), ignore_errors=True)
    os.rename(partial, os.path.join(base, COPIES))
    tmp = target + ".partial"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(before, handle, indent=1, sort_keys=True)
    # The record appears whole or not at all: an interrupted first run records again next time.
    os.replace(tmp, target)
    return {"recorded": True, "record": target}


def load_record(spec: dict[str, Any]) -> dict[str, Any]:
    target = os.path.join(spec["dir"], RECORD)
    try:
        with open(target, encoding="utf-8") as handle:
            before = json.load(handle)
    except FileNotFoundError:
        raise Refused(
            f"no record of this Pi before install ({target}): nothing changed "
            "(was it installed by presence-appliance, or uninstalled already?)"
        ) from None
    except ValueError:
        raise Refused(f"{target} is not readable JSON: nothing changed") from None
    if before.get("earlier_install"):
        raise Refused(
            "this Pi was provisioned before presence-appliance recorded how it was "
            f"({', '.join(before['earlier_install'])} existed at the first recording): "
            "nothing changed"
        )
    return before


# ---- the plan (pure: before and now in, steps out) ----------------------------------------


def unit_plan(
    before: dict[str, dict[str, str]],
    now: dict[str, dict[str, str]],
    reload: frozenset[str] = frozenset(),
) -> tuple[list[list[str]], list[list[str]]]:
    """systemctl argument lists: (before the files are touched, after daemon-reload).

    First: stop what did not run before, disable what was not enabled (and units that did not
    exist, whose files go next), mask what was masked. Then: unmask and enable what was so, and
    (re)start what ran before, so it reads its restored configuration (units in RELOAD, such
    as NetworkManager that carries the SSH connection, are reloaded instead).
    """
    first: list[list[str]] = []
    then: list[list[str]] = []
    # Sockets and timers first: a stopped service whose socket still listens starts again.
    for unit in sorted(before, key=lambda u: (not u.endswith((".socket", ".timer")), u)):
        was, is_ = before[unit], now.get(unit, {"load": "not-found", "file": "", "active": ""})
        ran = was["active"] in ACTIVE
        runs = is_["active"] in ACTIVE
        ours = was["load"] == "not-found"  # a unit the roles brought (its file goes)
        if not ran and runs:
            first.append(["stop", unit])
        # Units the roles brought are disabled before their files go; others as they were.
        brought_enabled = ours and is_["file"] not in ("", "disabled", "static")
        was_disabled = was["file"] == "disabled" and is_["file"] in ("enabled", "enabled-runtime")
        if brought_enabled or was_disabled:
            first.append(["disable", unit])
        if was["file"] == "masked" and is_["file"] != "masked":
            first.append(["mask", unit])
        if was["file"] == "enabled" and is_["file"] == "masked":
            then.append(["unmask", unit])
        if was["file"] == "enabled" and is_["file"] != "enabled":
            then.append(["enable", unit])
        if ran:
            then.append(["reload-or-restart" if unit in reload else "restart", unit])
        elif was["active"] == "failed" and was["file"] in ("enabled", "static"):
            # It was meant to run and failed: it gets its try again, as at every boot.
            then.append(["restart", unit])
        elif not ours and is_["active"] == "failed":
            then.append(["reset-failed", unit])
    return first, then


def file_plan(
    before: dict[str, Any], now_paths: list[str]
) -> tuple[list[str], list[str], list[str]]:
    """(files to put back, files to remove, directories to remove) to match the record.

    A directory that did not exist goes with everything in it when it is one of ours (a
    `tree`), otherwise only when empty; those checks happen when it is removed.
    """
    restore, remove, dirs = [], [], []
    recorded = before["paths"]
    for path in sorted(set(recorded) | set(now_paths)):
        was = recorded.get(path, {"present": False})
        if was.get("kind") == "dir" or (not was["present"] and os.path.isdir(path)):
            if not was["present"] and os.path.lexists(path):
                dirs.append(path)
            continue
        now = path_state(path)
        if was["present"]:
            if now != was:
                restore.append(path)
        elif now["present"]:
            remove.append(path)
    # Deepest first, so a directory is empty by the time its turn comes.
    dirs.sort(key=lambda p: p.count("/"), reverse=True)
    return restore, remove, dirs


def purge_plan(before: dict[str, bool], now: dict[str, bool]) -> list[str]:
    """Packages installed now that were not installed before."""
    return sorted(p for p, installed in now.items() if installed and not before.get(p, False))


# ---- uninstall ----------------------------------------------------------------------------


def systemctl(args: list[str], done: list[str], ignore: bool = False) -> None:
    result = run(["systemctl", *args])
    if result.returncode != 0 and not ignore:
        reason = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[0]
        raise Refused(f"systemctl {' '.join(args)} failed: {reason}")
    done.append(" ".join(args))


def put_back(base: str, path: str, was: dict[str, Any]) -> None:
    """PATH as recorded: the kept copy with its mode and owner (atomically), or the symlink."""
    if os.path.islink(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if was["kind"] == "link":
        os.symlink(was["target"], path)
        return
    tmp = f"{path}.presence-uninstall"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with (
        os.fdopen(fd, "wb") as out,
        open(os.path.join(base, COPIES, path.lstrip("/")), "rb") as src,
    ):
        shutil.copyfileobj(src, out)
    os.chown(tmp, was["uid"], was["gid"])
    os.chmod(tmp, was["mode"])
    os.replace(tmp, path)


def uninstall(spec: dict[str, Any], purge: bool) -> dict[str, Any]:
    before = load_record(spec)
    base = spec["dir"]
    report: dict[str, Any] = {"restored": [], "removed": [], "units": [], "purged": []}
    units_now = unit_states(list(before["units"]))
    first, then = unit_plan(before["units"], units_now, frozenset(spec.get("reload", [])))
    for args in first:
        systemctl(args, report["units"])
    # Files: the record's copies go back, what did not exist goes.
    now_paths = managed_paths({"patterns": before.get("patterns", []), "files": []})
    restore, remove, dirs = file_plan(before, now_paths)
    for path in restore:
        put_back(base, path, before["paths"][path])
        report["restored"].append(path)
    for path in remove:
        os.unlink(path)
        report["removed"].append(path)
    # The roles' system accounts, once no unit of theirs runs (userdel refuses a busy user).
    recorded_accounts = before.get("accounts", {})
    for args in account_plan(recorded_accounts, accounts(list(recorded_accounts))):
        if args[0] == "groupdel" and run(["getent", "group", args[1]]).returncode != 0:
            continue  # userdel took the user's own group with it
        result = run(args)
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[0]
            raise Refused(f"{' '.join(args)} failed: {reason}")
        report.setdefault("accounts", []).append(" ".join(args))
    # Unit files and drop-ins changed: systemd reads them again before any unit moves.
    if first or then or any(p.startswith(UNIT_DIRS) for p in restore + remove):
        systemctl(["daemon-reload"], report["units"])
    # The firewall's table (another program's tables are never touched).
    family, table = spec.get("nft_table") or ("", "")
    if (
        table
        and shutil.which("nft")
        and run(["nft", "list", "table", family, table]).returncode == 0
    ):
        deleted = run(["nft", "delete", "table", family, table])
        if deleted.returncode != 0:
            raise Refused(f"nft delete table {family} {table} failed: {deleted.stderr.strip()}")
        report["nft_table_deleted"] = f"{family} {table}"
    for name, value in before.get("sysctls", {}).items():
        if sysctl_values([name]).get(name) != value:
            with open(sysctl_path(name), "w", encoding="ascii") as handle:
                handle.write(value + "\n")
            report.setdefault("sysctls", {})[name] = value
    # Wi-Fi radios blocked before the first install are blocked again (a record from before
    # this was kept has no such key: nothing to do).
    blocked = {name for name, was in before.get("wifi_soft_blocked", {}).items() if was}
    if blocked:
        reblocked = soft_block(spec.get("rfkill_dir", RFKILL_DIR), blocked)
        if reblocked:
            report["rfkill_soft_blocked"] = reblocked
    address, interface = spec.get("address", ""), spec.get("interface", "")
    if address and interface and os.path.isdir(f"/sys/class/net/{interface}"):
        shown = run(["ip", "-o", "-4", "addr", "show", "dev", interface])
        if f" {address} " in f" {shown.stdout} ":
            run(["ip", "addr", "del", address, "dev", interface])
            report["address_removed"] = f"{address} on {interface}"
    if purge:
        gone = purge_plan(before.get("packages", {}), installed_packages(list(before["packages"])))
        if gone:
            result = run(
                ["apt-get", "purge", "-y", "-q", *gone],
                timeout=PURGE_TIMEOUT,
            )
            if result.returncode != 0:
                reason = (result.stderr.strip().splitlines() or ["apt-get failed"])[-1]
                raise Refused(f"apt-get purge {' '.join(gone)} failed: {reason}")
            report["purged"] = gone
    # Every step is tried; the first failure is reported after all of them (a unit that
    # failed before may fail again: that is its recorded state).
    failures = []
    for args in then:
        expected = args[0] == "reset-failed" or before["units"][args[1]]["active"] == "failed"
        try:
            systemctl(args, report["units"], ignore=expected)
        except Refused as err:
            failures.append(str(err))
    handback = before.get("network_manager", {})
    if handback.get("managed") and nm_managed(handback["interface"]) is False:
        run(["nmcli", "device", "set", handback["interface"], "managed", "yes"])
        report["network_manager"] = f"manages {handback['interface']} again"
    if failures:  # the record stays: `uninstall` again finishes the job
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise Refused(failures[0] + more)
    # Our directories last (the record and its copies live in one of them).
    removed_dirs = []
    trees = set(spec.get("trees", []))
    for path in dirs:
        if path in trees:
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.rmdir(path)
            except OSError:
                continue  # someone else's files are in it: it stays
        removed_dirs.append(path)
    report["removed"] += removed_dirs
    for leftover in (os.path.join(base, RECORD), os.path.join(base, COPIES)):
        if os.path.isdir(leftover):
            shutil.rmtree(leftover, ignore_errors=True)
        elif os.path.exists(leftover):
            os.unlink(leftover)
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="presence-uninstall", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("record").add_argument("--spec", required=True, help="the spec as JSON text")
    undo = sub.add_parser("uninstall")
    undo.add_argument("--spec", required=True, help="the spec as JSON text")
    undo.add_argument("--purge", action="store_true")
    args = parser.parse_args(argv)
    os.umask(0o077)
    os.environ["DEBIAN_FRONTEND"] = "noninteractive"
    try:
        spec = json.loads(args.spec)
        if not isinstance(spec, dict) or not isinstance(spec.get("dir"), str):
            raise Refused("--spec must be a JSON object with the record's directory as `dir`")
        result = record(spec) if args.action == "record" else uninstall(spec, args.purge)
    except Refused as err:
        print(f"presence-uninstall: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"presence-uninstall: --spec is not JSON: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"presence-uninstall: {err.filename or ''}: {err.strerror}", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired as err:
        print(
            f"presence-uninstall: {err.cmd[0]} did not finish in {err.timeout} s", file=sys.stderr
        )
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
