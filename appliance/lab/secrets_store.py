"""The lab's generated secrets (demo-only): Wi-Fi passphrase, web password, secure ids, SSH key."""

from __future__ import annotations

import json
import secrets
import string
from pathlib import Path

from appliance.lab.run import run
from appliance.lab.state import ensure_private_dir, write_private

_ALPHABET = string.ascii_letters + string.digits


def _token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def load_secrets(directory: Path, camera_names: list[str]) -> dict[str, object]:
    """Read lab/secrets.json (mode 0600), adding whatever is missing; kept across ups."""
    path = directory / "secrets.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    changed = not data
    if "wifi_passphrase" not in data:
        data["wifi_passphrase"] = _token(20)
    if "web_password" not in data:
        data["web_password"] = _token(16)
    ids = data.setdefault("secure_ids", {})
    for name in camera_names:
        if name not in ids:
            ids[name] = secrets.token_hex(16)
            changed = True
    if changed or not path.exists():
        ensure_private_dir(directory)
        write_private(path, json.dumps(data, indent=2))
    return data


def ensure_ssh_key(directory: Path) -> Path:
    """The lab's SSH key pair (lab/ssh/id_ed25519, mode 0600); returns the private key path."""
    key = ensure_private_dir(directory / "ssh") / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "presence-lab", "-f", key])
    key.chmod(0o600)
    return key
