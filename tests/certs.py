"""One way for tests to make a self-signed certificate (EC P-256, as the web role makes it on the Pi)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_self_signed(key: Path, cert: Path, common_name: str, san: str, days: int = 30) -> Path:
    """Write KEY and CERT for COMMON_NAME with subjectAltName SAN (e.g. "DNS:x,IP:1.2.3.4"); return CERT."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            f"/CN={common_name}",
            "-addext",
            f"subjectAltName={san}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert
