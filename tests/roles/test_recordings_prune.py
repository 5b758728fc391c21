"""The recordings prune program (rendered by the recordings role) on real files: by age, by a
camera's quota, by free space on a real small file system (a tmpfs mounted in a private mount
namespace: statvfs is the kernel's), oldest first; a dry run changes nothing; names a camera
chose are never followed through a symlink and are printed escaped."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.roles.conftest import run
from tests.roles.test_recordings import recording_vars, render

MB = 1024 * 1024
DAY = 86400


@pytest.fixture(scope="module")
def helper_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = render(tmp_path_factory.mktemp("render"), recording_vars())
    return out / "usr/local/sbin/presence-recordings"


@pytest.fixture(scope="module")
def helper(helper_path: Path) -> ModuleType:
    """The rendered program imported as a module (its pure functions)."""
    loader = importlib.machinery.SourceFileLoader("presence_recordings", str(helper_path))
    spec = importlib.util.spec_from_loader("presence_recordings", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclass looks its own module up while the class is made.
    sys.modules["presence_recordings"] = module
    loader.exec_module(module)
    return module


def _file(root: Path, rel: str, size: int, age_days: float, now: float) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    stamp = now - age_days * DAY
    os.utime(path, (stamp, stamp))
    return path


def _config(tmp: Path, root: Path, **settings: Any) -> Path:
    config = {
        "path": str(root),
        "require_mount": False,
        "retention_days": 30,
        "camera_quota_mb": 4096,
        "min_free_mb": 1,
        **settings,
    }
    path = tmp / "recordings.json"
    path.write_text(json.dumps(config))
    return path


def _prune(helper_path: Path, config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(helper_path), "--config", str(config), "prune", *extra])


def test_age_goes_first_and_each_deletion_is_one_line(helper_path: Path, tmp_path: Path) -> None:
    root, now = tmp_path / "rec", time.time()
    old = _file(root, "nord/2026/10/01/2026-10-01-10.00-a.mp4", 1000, 40, now)
    older = _file(root, "sued/2026/09/01/2026-09-01-10.00-b.mp4", 1000, 70, now)
    young = _file(root, "nord/2026/11/29/2026-11-29-10.00-c.mp4", 1000, 1, now)
    edge = _file(root, "nord/2026/11/01/2026-11-01-10.00-d.mp4", 1000, 29.9, now)
    result = _prune(helper_path, _config(tmp_path, root))
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "deleted sued/2026/09/01/2026-09-01-10.00-b.mp4 (1000 bytes): older than 30 days",
        "deleted nord/2026/10/01/2026-10-01-10.00-a.mp4 (1000 bytes): older than 30 days",
    ]
    assert lines[2].startswith("deleted 2 files, 2000 bytes; ")
    assert not old.exists() and not older.exists() and young.exists() and edge.exists()
    # Emptied day/month/year folders go; the camera's own folder stays.
    assert not (root / "sued/2026").exists() and (root / "sued").is_dir()
    assert not (root / "nord/2026/10").exists() and (root / "nord/2026/11").is_dir()


def test_quota_per_camera_oldest_first(helper_path: Path, tmp_path: Path) -> None:
    root, now = tmp_path / "rec", time.time()
    nord = [_file(root, f"nord/2026/11/{10 + i}/f{i}.mp4", MB, 20 - i, now) for i in range(6)]
    sued = [_file(root, f"sued/2026/11/{10 + i}/f{i}.mp4", MB, 20 - i, now) for i in range(3)]
    # A 4 MB quota: nord (6 MB) loses its two oldest files; sued (3 MB) keeps everything.
    result = _prune(helper_path, _config(tmp_path, root, camera_quota_mb=4))
    assert [p.exists() for p in nord] == [False, False, True, True, True, True]
    assert all(p.exists() for p in sued)
    assert result.stdout.count("camera over its 4 MB quota") == 2


def test_dry_run_changes_nothing_and_names_what_would_go(helper_path: Path, tmp_path: Path) -> None:
    root, now = tmp_path / "rec", time.time()
    files = [_file(root, f"nord/x/f{i}.mp4", MB, 40 - i * 5, now) for i in range(6)]
    before = {p: (p.stat().st_size, p.stat().st_mtime) for p in files}
    config = _config(tmp_path, root, camera_quota_mb=2)
    dry = json.loads(_prune(helper_path, config, "--dry-run", "--json").stdout)
    assert {p: (p.stat().st_size, p.stat().st_mtime) for p in files} == before
    text = _prune(helper_path, config, "--dry-run").stdout
    assert text.count("would delete nord/") == len(dry["deleted"]) == 4
    real = json.loads(_prune(helper_path, config, "--json").stdout)
    assert dry["dry_run"] is True and real["dry_run"] is False
    assert [d["path"] for d in real["deleted"]] == [d["path"] for d in dry["deleted"]]
    assert [p.exists() for p in files] == [False, False, False, False, True, True]


def test_links_are_never_followed_and_odd_names_are_escaped(
    helper_path: Path, tmp_path: Path
) -> None:
    root, now = tmp_path / "rec", time.time()
    outside = _file(tmp_path, "precious/keep.txt", 10, 400, now)
    (root / "nord").mkdir(parents=True)
    (root / "nord/link.mp4").symlink_to(outside)
    (root / "nord/linked-dir").symlink_to(outside.parent, target_is_directory=True)
    (root / "evil").symlink_to(outside.parent, target_is_directory=True)  # a "camera" link
    odd = _file(root, "nord/bad\x1b[2Jname\nx.mp4", 10, 400, now)
    result = _prune(helper_path, _config(tmp_path, root))
    assert outside.exists() and (root / "nord/link.mp4").is_symlink()
    assert not odd.exists()
    assert "deleted nord/bad\\x1b[2Jname\\nx.mp4 (10 bytes): older than 30 days" in result.stdout
    assert "\x1b" not in result.stdout


def test_unmounted_storage_is_refused_when_a_mount_is_required(
    helper_path: Path, tmp_path: Path
) -> None:
    root, now = tmp_path / "rec", time.time()
    kept = _file(root, "nord/old.mp4", 10, 400, now)
    config = _config(tmp_path, root, require_mount=True)
    result = run([sys.executable, str(helper_path), "--config", str(config), "prune"], check=False)
    assert result.returncode == 1 and kept.exists()
    assert result.stderr == (
        f"presence-recordings: {root} is not mounted (recordings.require_mount): nothing done\n"
    )


def test_plan_orders_by_upload_time_and_treats_future_times_as_now(helper: ModuleType) -> None:
    now = 1_000_000.0
    rec = helper.Recording
    files = [
        rec("nord", "future.mp4", 10, now + 10 * DAY),  # a wrong clock: not the newest forever
        rec("nord", "b.mp4", 10, now - 5),
        rec("nord", "a.mp4", 10, now - 5),
        rec("sued", "old.mp4", 10, now - 100),
    ]
    config = {"retention_days": 30, "camera_quota_mb": 4096, "min_free_mb": 1}
    chosen = helper.plan_and_prune(files, config, now, lambda: 0, None)
    # Free space never reached (0 bytes free): everything goes, oldest first.
    assert [r.path for r, _ in chosen] == ["old.mp4", "a.mp4", "b.mp4", "future.mp4"]


# --- free space on a real small file system -------------------------------------------


def test_min_free_on_a_small_file_system_and_its_dry_run(helper_path: Path, tmp_path: Path) -> None:
    """A 96 MB tmpfs in a private mount namespace holding 80 MB of recordings of two cameras;
    64 MB must stay free: the oldest files of either camera go until it is so."""
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    maker = tmp_path / "make.py"
    maker.write_text(
        "import os, sys, time\n"
        "root, now = sys.argv[1], time.time()\n"
        "for i in range(40):\n"
        "    cam = ('nord', 'sued')[i % 2]\n"
        "    d = os.path.join(root, 'rec', cam, '2026', '11', f'{i:02d}')\n"
        "    os.makedirs(d, exist_ok=True)\n"
        "    p = os.path.join(d, f'{i:02d}.mp4')\n"
        "    open(p, 'wb').write(os.urandom(2 * 1024 * 1024))\n"
        "    os.utime(p, (now - (40 - i) * 3600, now - (40 - i) * 3600))\n"
    )
    config = _config(tmp_path, mnt / "rec", min_free_mb=64, require_mount=False)
    py, prog = sys.executable, str(helper_path)
    lister = "import os,sys,json; print(json.dumps(sorted(os.path.relpath(os.path.join(d, f), sys.argv[1]) for d, _, fs in os.walk(sys.argv[1]) for f in fs)))"
    script = f"""set -e
mount -t tmpfs -o size=96m tmpfs {mnt}
{py} {maker} {mnt}
df -B1 --output=avail {mnt} | tail -n 1 > {tmp_path}/free-before
{py} -c '{lister}' {mnt}/rec > {tmp_path}/before.json
{py} {prog} --config {config} prune --dry-run --json > {tmp_path}/dry.json
{py} -c '{lister}' {mnt}/rec > {tmp_path}/after-dry.json
{py} {prog} --config {config} prune > {tmp_path}/prune.log
df -B1 --output=avail {mnt} | tail -n 1 > {tmp_path}/free-after
{py} -c '{lister}' {mnt}/rec > {tmp_path}/after.json
"""
    run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], timeout=60)
    before = json.loads((tmp_path / "before.json").read_text())
    assert len(before) == 40
    assert int((tmp_path / "free-before").read_text()) < 64 * MB
    # The dry run left every file, and named the oldest ones.
    assert json.loads((tmp_path / "after-dry.json").read_text()) == before
    dry = json.loads((tmp_path / "dry.json").read_text())
    assert all(d["reason"] == "less than 64 MB free" for d in dry["deleted"])
    # The real run: at least 64 MB free now, and only just (one file fewer would not do).
    free_after = int((tmp_path / "free-after").read_text())
    assert free_after >= 64 * MB
    after = json.loads((tmp_path / "after.json").read_text())
    gone = [p for p in before if p not in after]
    assert free_after - 2 * MB < 64 * MB
    # Oldest first, across both cameras (file i is i hours younger than file i-1).
    assert (
        sorted(gone, key=lambda p: p.split("/")[-1])
        == sorted(before, key=lambda p: p.split("/")[-1])[: len(gone)]
    )
    assert {p.split("/")[0] for p in gone} == {"nord", "sued"}
    assert [f"{d['camera']}/{d['path']}" for d in dry["deleted"]] == sorted(
        gone, key=lambda p: p.split("/")[-1]
    )
    log = (tmp_path / "prune.log").read_text().splitlines()
    assert len(
        [
            line
            for line in log
            if line.startswith("deleted nord/") or line.startswith("deleted sued/")
        ]
    ) == len(gone)
    assert not (Path(mnt) / "rec").exists()  # the tmpfs went with its namespace
