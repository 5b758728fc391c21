"""Fetch the pinned hls.js (from npm, with the ordinary npm client) into a local cache, checked."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
WEB_DEFAULTS = REPO / "roles" / "web" / "defaults" / "main.yml"


def pinned() -> tuple[str, str]:
    """(version, sha256 of dist/hls.min.js) as the web role pins them."""
    defaults = yaml.safe_load(WEB_DEFAULTS.read_text())
    return str(defaults["web_hlsjs_version"]), str(defaults["web_hlsjs_sha256"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_hlsjs(cache_dir: Path | None = None) -> Path:
    """Path of the pinned hls.min.js, fetched once with `npm pack` (the lab and the tests
    point the role's web_hlsjs_src at it: they have no route to any download site)."""
    version, checksum = pinned()
    cache = (cache_dir or Path.home() / ".cache" / "presence-appliance" / "hlsjs") / version
    target = cache / "hls.min.js"
    if target.exists() and sha256(target) == checksum:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            ["npm", "pack", f"hls.js@{version}", "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
            timeout=180,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"npm pack hls.js@{version} failed: {proc.stderr.strip()[-300:]}")
        tarball = next(Path(tmp).glob("hls.js-*.tgz"))
        with tarfile.open(tarball) as archive:
            member = archive.extractfile("package/dist/hls.min.js")
            if member is None:
                raise RuntimeError(f"{tarball.name} has no package/dist/hls.min.js")
            data = io.BytesIO(member.read()).getvalue()
    if hashlib.sha256(data).hexdigest() != checksum:
        raise RuntimeError(f"hls.js {version} from npm does not match the pinned sha256")
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target
