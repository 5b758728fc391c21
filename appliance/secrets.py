"""Keep secrets out of everything we print: collect them from the inventory and mask them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "********"


def inventory_secrets(variables: dict[str, Any]) -> set[str]:
    """The secret strings of one appliance: Wi-Fi passphrases, secure ids, web and FTP passwords."""
    found: set[str] = set()
    wifi = variables.get("wifi")
    if isinstance(wifi, dict):
        found.add(wifi.get("passphrase"))
    web = variables.get("web")
    if isinstance(web, dict):
        for user in web.get("users") or []:
            if isinstance(user, dict):
                found.add(user.get("password"))
    for camera in variables.get("cameras") or []:
        if isinstance(camera, dict):
            found.add(camera.get("secure_id"))
            found.add(camera.get("passphrase"))
            found.add(camera.get("ftp_password"))
    # Very short strings would mask ordinary words; the schema rejects such secrets anyway.
    return {s for s in found if isinstance(s, str) and len(s) >= 4}


class Redactor:
    """Replace every known secret in a text with a mask."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted(
            set(self._secrets) | {s for s in secrets if s}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


# Secure ids are hex (the schema insists). A diff's "before" side holds the ids that are on
# the Pi now, which the inventory may no longer name: mask every long hex run there.
_HEX_RUN = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{12,}(?![0-9A-Za-z])")


def redact_diff(text: str, redact: Redactor) -> str:
    """Mask known secrets and anything shaped like a secure id in a config diff."""
    return _HEX_RUN.sub(MASK, redact(text))
