"""Read a Pi's DHCP leases (dnsmasq's lease file) over SSH, as Ansible would connect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance import pi_shell

LEASES_FILE = "/var/lib/misc/dnsmasq.leases"
NETATMO_OUI = "70:ee:50"
SSH_TIMEOUT = 20.0


class LeaseError(Exception):
    """The leases of one Pi could not be read; one line."""


@dataclass(frozen=True)
class Lease:
    expiry: int  # unix time; 0 = never expires
    mac: str
    ip: str
    hostname: str  # "" when the client sent none
    client_id: str

    @property
    def is_netatmo(self) -> bool:
        return self.mac.lower().startswith(NETATMO_OUI)


def parse_leases(text: str) -> list[Lease]:
    """dnsmasq lease lines: `EXPIRY MAC IP HOSTNAME CLIENT-ID` (`*` = none); IPv6 lines skipped."""
    leases = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] == "duid" or ":" in fields[2]:
            continue
        try:
            expiry = int(fields[0])
        except ValueError:
            continue
        hostname = "" if fields[3] == "*" else fields[3]
        client_id = fields[4] if len(fields) > 4 and fields[4] != "*" else ""
        leases.append(Lease(expiry, fields[1].lower(), fields[2], hostname, client_id))
    return leases


def read_leases(
    host_name: str, variables: dict[str, Any], timeout: float = SSH_TIMEOUT
) -> list[Lease]:
    """The current leases of one Pi."""
    try:
        text = pi_shell.output(
            host_name,
            variables,
            ["cat", LEASES_FILE],
            timeout,
            what=f"reading {LEASES_FILE}",
            absent=f"no {LEASES_FILE} yet (run install; no client yet?)",
        )
    except pi_shell.PiShellError as err:
        raise LeaseError(str(err)) from None
    return parse_leases(text)
