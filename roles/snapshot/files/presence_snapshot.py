#!/usr/bin/python3
"""Keep the files a provisioning run replaces, list the kept sets, restore one (presence-snapshot).

Installed on the Pi by the snapshot role; reads the spec the role writes (which files, their
checkers, their services). Snapshots live under the spec's `dir` as STAMP/manifest.json plus
STAMP/files/<path>, root-only (they hold the Wi-Fi passphrase and the web login hashes).

  take --stamp S        copy every managed file as it is now (before the roles run); also
                        names the services an earlier run left without their restart
  settle --stamp S      drop S when the run replaced nothing, then keep only the newest `keep`;
                        marks every run up to S as complete
  list                  one JSON object per snapshot, newest first, with what differs from live
  pending               the services unfinished runs left without their restart (changes
                        nothing; `doctor` asks)
  restore [--to S]      check the kept copies with the services' own checkers, then put them
                        back (taking a snapshot of the live files first, so a rollback can be
                        undone); prints JSON: restored and removed files, services to restart

Exit 0 on success, 1 with one line on stderr when something is refused, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any

STAMP = re.compile(r"^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$")
CHECK_TIMEOUT = 60


class Refused(Exception):
    """A one-line reason to stop without changing anything."""


def load_spec(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(65536), b""):
            sha.update(block)
    return sha.hexdigest()


def managed_now(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every managed path (fixed files, and what the patterns match now) -> its spec entry."""
    found = {entry["path"]: entry for entry in spec["files"]}
    for entry in spec.get("patterns", []):
        for path in sorted(glob.glob(entry["pattern"])):
            found.setdefault(path, {**entry, "path": path})
    return found


def state_of(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        return {"present": False}
    info = os.stat(path)
    return {
        "present": True,
        "sha256": digest(path),
        "mode": info.st_mode & 0o7777,
        "uid": info.st_uid,
        "gid": info.st_gid,
    }


def snapshot_dir(spec: dict[str, Any], stamp: str) -> str:
    if not STAMP.match(stamp):
        raise Refused(f"{stamp!r} is not a snapshot name (like 20261130T145000Z)")
    return os.path.join(spec["dir"], stamp)


def stamps(spec: dict[str, Any]) -> list[str]:
    """The complete snapshots, newest first."""
    try:
        names = os.listdir(spec["dir"])
    except FileNotFoundError:
        return []
    done = [
        n
        for n in names
        if STAMP.match(n) and os.path.isfile(os.path.join(spec["dir"], n, "manifest.json"))
    ]
    return sorted(done, reverse=True)


def read_manifest(spec: dict[str, Any], stamp: str) -> dict[str, Any]:
    try:
        with open(os.path.join(snapshot_dir(spec, stamp), "manifest.json"), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise Refused(f"no snapshot {stamp} (see `rollback --list`)") from None


def take(spec: dict[str, Any], stamp: str, note: str = "", run: bool = False) -> str:
    """Copy every managed file into a new snapshot; return its name. RUN: taken at the start
    of a provisioning run, which `settle` marks complete once its restarts are done."""
    os.makedirs(spec["dir"], mode=0o700, exist_ok=True)
    os.chmod(spec["dir"], 0o700)
    name, number = stamp, 1
    while os.path.exists(os.path.join(spec["dir"], name)):
        number += 1
        name = f"{stamp}-{number}"
    final = snapshot_dir(spec, name)
    partial = final + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial, mode=0o700)
    files: dict[str, Any] = {}
    for path in managed_now(spec):
        state = state_of(path)
        if state["present"]:
            copy = os.path.join(partial, "files", path.lstrip("/"))
            os.makedirs(os.path.dirname(copy), mode=0o700, exist_ok=True)
            shutil.copyfile(path, copy)
            os.chmod(copy, state["mode"])
        files[path] = state
    manifest = {
        "stamp": name,
        "taken": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": note,
        "files": files,
        "patterns": [p["pattern"] for p in spec.get("patterns", [])],
        "run": run,
        "settled": False,
    }
    with open(os.path.join(partial, "manifest.json"), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
    # Complete or absent: a run killed half-way never leaves a snapshot that looks whole.
    os.rename(partial, final)
    return name


def differences(spec: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """Managed paths whose live content differs from the snapshot (incl. new pattern files)."""
    paths = set(manifest["files"]) | set(managed_now(spec))
    changed = []
    for path in sorted(paths):
        kept = manifest["files"].get(path, {"present": False})
        live = state_of(path)
        if kept["present"] != live["present"] or (
            kept["present"] and kept["sha256"] != live["sha256"]
        ):
            changed.append(path)
    return changed


def prune(spec: dict[str, Any]) -> list[str]:
    """Remove the oldest snapshots beyond `keep`, and leftovers of interrupted ones."""
    for name in os.listdir(spec["dir"]) if os.path.isdir(spec["dir"]) else []:
        if name.endswith(".partial"):
            shutil.rmtree(os.path.join(spec["dir"], name), ignore_errors=True)
    dropped = stamps(spec)[int(spec["keep"]) :]
    for name in dropped:
        shutil.rmtree(snapshot_dir(spec, name), ignore_errors=True)
    return dropped


def unsettled_runs(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Snapshots of runs that never reached `settle` (cut off, or a task failed), newest first."""
    found = []
    for name in stamps(spec):
        manifest = read_manifest(spec, name)
        if manifest.get("run") and not manifest.get("settled"):
            found.append((name, manifest))
    return found


def ordered(services: set[str]) -> list[str]:
    # daemon-reload first: a changed unit drop-in must be read before its service restarts.
    return sorted(services, key=lambda s: (s != "daemon-reload", s))


def pending(spec: dict[str, Any]) -> list[str]:
    """Services whose files an unsettled run changed. Its handlers never ran (Ansible runs no
    handler on a host that failed or dropped off), and the next run finds those files already
    as it wants them, so nothing else would ever restart the services on them."""
    services: set[str] = set()
    for _, manifest in unsettled_runs(spec):
        for path in differences(spec, manifest):
            services.update(entry_for(spec, path).get("services", []))
    return ordered(services)


def mark_settled(spec: dict[str, Any], name: str, manifest: dict[str, Any]) -> None:
    path = os.path.join(snapshot_dir(spec, name), "manifest.json")
    with open(path + ".new", "w", encoding="utf-8") as handle:
        json.dump({**manifest, "settled": True}, handle, indent=1, sort_keys=True)
    os.replace(path + ".new", path)


def settle(spec: dict[str, Any], stamp: str) -> dict[str, Any]:
    manifest = read_manifest(spec, stamp)
    changed = differences(spec, manifest)
    # This run got to its end: its restarts and those earlier runs left pending (done at its
    # start) have run.
    for name, earlier in unsettled_runs(spec):
        if name <= stamp:
            mark_settled(spec, name, earlier)
    if not changed:
        shutil.rmtree(snapshot_dir(spec, stamp))
    return {"stamp": stamp, "kept": bool(changed), "replaced": changed, "pruned": prune(spec)}


def listing(spec: dict[str, Any]) -> list[dict[str, Any]]:
    result = []
    for name in stamps(spec):
        manifest = read_manifest(spec, name)
        result.append(
            {
                "stamp": name,
                "taken": manifest.get("taken", ""),
                "note": manifest.get("note", ""),
                "files": sum(1 for f in manifest["files"].values() if f["present"]),
                "differs": differences(spec, manifest),
            }
        )
    return result


def run_check(argv: list[str], path: str) -> str:
    """'' when the checker accepts PATH, else its first line of complaint."""
    command = [arg.replace("{}", path) for arg in argv]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=CHECK_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{command[0]}: {err}"
    if done.returncode == 0:
        return ""
    lines = [ln.strip() for ln in (done.stderr + "\n" + done.stdout).splitlines() if ln.strip()]
    return lines[0] if lines else f"{command[0]} exited with {done.returncode}"


def reservations(path: str) -> dict[str, str]:
    """MAC -> reserved address from a dnsmasq file's `dhcp-host=MAC,IP,...` lines."""
    found: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("dhcp-host="):
                    fields = line[len("dhcp-host=") :].strip().split(",")
                    if len(fields) > 1:
                        found[fields[0].lower()] = fields[1]
    except FileNotFoundError:
        pass
    return found


def write_like(source: str, target: str, state: dict[str, Any]) -> None:
    """Put SOURCE's content at TARGET with the kept mode and owner, atomically."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = f"{target}.presence-rollback"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out)
    os.chown(tmp, state["uid"], state["gid"])
    os.chmod(tmp, state["mode"])
    os.replace(tmp, target)


def restore(spec: dict[str, Any], stamp: str | None) -> dict[str, Any]:
    available = stamps(spec)
    if not available:
        raise Refused(f"no snapshots in {spec['dir']}: nothing to roll back to")
    if stamp:
        chosen = stamp
        manifest = read_manifest(spec, chosen)
        changed = differences(spec, manifest)
    else:
        # The newest snapshot that differs from the Pi now (a run that failed before changing
        # anything leaves one that does not).
        for chosen in available:
            manifest = read_manifest(spec, chosen)
            changed = differences(spec, manifest)
            if changed:
                break
        else:
            chosen = available[0]
            manifest = read_manifest(spec, chosen)
    base = snapshot_dir(spec, chosen)
    entries = {p: entry_for(spec, p) for p in set(manifest["files"]) | set(managed_now(spec))}
    # Files the services cannot run without are never removed by a rollback: a snapshot from
    # before the first install would otherwise take the appliance apart.
    for path in changed:
        entry = entries.get(path, {})
        if entry.get("required") and not manifest["files"].get(path, {}).get("present"):
            raise Refused(
                f"snapshot {chosen} has no {path} (taken before the first install): "
                "choose a later one with --to"
            )
    for path in changed:
        kept = manifest["files"].get(path, {"present": False})
        check = entries.get(path, {}).get("check")
        if kept["present"] and check:
            reason = run_check(check, os.path.join(base, "files", path.lstrip("/")))
            if reason:
                raise Refused(
                    f"{chosen}: {path} rejected by its checker, nothing restored: {reason}"
                )
    if not changed:
        return {
            "stamp": chosen,
            "restored": [],
            "removed": [],
            "services": [],
            "undo": "",
            "rejoin": [],
        }
    # Cameras whose reserved address the rollback changes must rejoin to take it (as install).
    moved: set[str] = set()
    for path in changed:
        if entries.get(path, {}).get("reservations"):
            kept_copy = os.path.join(base, "files", path.lstrip("/"))
            before, after = reservations(path), reservations(kept_copy)
            moved |= {mac for mac, ip in after.items() if mac in before and before[mac] != ip}
    undo = take(
        spec, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), note=f"before rollback to {chosen}"
    )
    restored, removed = [], []
    for path in changed:
        kept = manifest["files"].get(path, {"present": False})
        if kept["present"]:
            write_like(os.path.join(base, "files", path.lstrip("/")), path, kept)
            restored.append(path)
        elif os.path.exists(path):
            os.unlink(path)
            removed.append(path)
    services = ordered({s for p in changed for s in entries.get(p, {}).get("services", [])})
    prune(spec)
    return {
        "stamp": chosen,
        "restored": restored,
        "removed": removed,
        "services": services,
        "undo": undo,
        "rejoin": sorted(moved),
    }


def entry_for(spec: dict[str, Any], path: str) -> dict[str, Any]:
    """The spec entry (checker, services) of a managed PATH."""
    for entry in spec["files"]:
        if entry["path"] == path:
            return entry
    for entry in spec.get("patterns", []):
        if fnmatch.fnmatch(path, entry["pattern"]):
            return {**entry, "path": path}
    return {"path": path}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="presence-snapshot", description=__doc__)
    parser.add_argument("--spec", default="/etc/presence-appliance/snapshot.json")
    sub = parser.add_subparsers(dest="action", required=True)
    for name in ("take", "settle"):
        sub.add_parser(name).add_argument("--stamp", required=True)
    sub.add_parser("list")
    # Read only (for `doctor`): what `take` would name as left pending by unfinished runs.
    sub.add_parser("pending")
    sub.add_parser("restore").add_argument("--to", default=None)
    args = parser.parse_args(argv)
    os.umask(0o077)
    try:
        spec = load_spec(args.spec)
        if args.action == "take":
            left = pending(spec)
            result: Any = {"stamp": take(spec, args.stamp, run=True), "pending": left}
        elif args.action == "settle":
            result = settle(spec, args.stamp)
        elif args.action == "list":
            result = listing(spec)
        elif args.action == "pending":
            result = {"pending": pending(spec)}
        else:
            result = restore(spec, args.to)
    except Refused as err:
        print(f"presence-snapshot: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"presence-snapshot: {err.filename or ''}: {err.strerror}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
