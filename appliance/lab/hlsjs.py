"""hls.js for the lab's dashboard: the Pi has no internet, so `lab up` hands the web role a local copy."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from importlib import resources
from pathlib import Path

import yaml

from appliance.lab.run import LabError, run

CACHE = Path.home() / ".cache" / "presence-appliance" / "hlsjs"


def pinned() -> tuple[str, str]:
    """(version, sha256 of dist/hls.min.js) as the web role's defaults pin them."""
    defaults = resources.files("appliance") / "roles" / "web" / "defaults" / "main.yml"
    data = yaml.safe_load(defaults.read_text())
    return str(data["web_hlsjs_version"]), str(data["web_hlsjs_sha256"])


def local_hlsjs(fetch: bool = True) -> Path | None:
    """The pinned hls.min.js in the user's cache, fetched once with `npm pack` when missing.

    None when the web role pins nothing or npm is unavailable: the role then reports how
    to provide the file itself.
    """
    try:
        version, checksum = pinned()
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None
    target = CACHE / version / "hls.min.js"
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == checksum:
        return target
    if not fetch or shutil.which("npm") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            run(
                ["npm", "pack", f"hls.js@{version}", "--pack-destination", tmp, "--silent"],
                timeout=180,
            )
        except LabError:
            return None
        tarball = next(Path(tmp).glob("hls.js-*.tgz"), None)
        if tarball is None:
            return None
        with tarfile.open(tarball) as archive:
            member = archive.extractfile("package/dist/hls.min.js")
            data = io.BytesIO(member.read()).getvalue() if member else b""
    if hashlib.sha256(data).hexdigest() != checksum:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    # A name of this process's own: `make test`'s two sessions may fetch at once, and a
    # shared one would be renamed away under the other's write.
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(target)
    return target
