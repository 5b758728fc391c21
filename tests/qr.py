"""Decode a QR code with zbarimg (Debian zbar-tools), a real reader, as a phone's camera would."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from appliance.remote import qr_modules


def decode_modules(modules: list[list[int]], workdir: Path, scale: int = 6) -> str:
    """The text in a QR module matrix (1 = dark), drawn SCALE pixels per module."""
    zbarimg = shutil.which("zbarimg")
    assert zbarimg, "zbarimg (Debian zbar-tools) is a declared test dependency (Makefile)"
    width, height = len(modules[0]) * scale, len(modules) * scale
    rows = []
    for row in modules:
        line = " ".join(str(m) for m in row for _ in range(scale))
        rows.extend([line] * scale)
    image = workdir / "qr.pbm"
    image.write_text(f"P1\n{width} {height}\n" + "\n".join(rows) + "\n")
    proc = subprocess.run(
        [zbarimg, "--raw", "-q", "-Sdisable", "-Sqrcode.enable", str(image)],
        capture_output=True,
        timeout=30,
    )
    image.unlink()
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode().removesuffix("\n")


def decode_terminal(printed: str, workdir: Path) -> str:
    """The text of the QR code in what `remote add` printed to the terminal."""
    return decode_modules(qr_modules(printed), workdir)
