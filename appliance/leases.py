"""Read a Pi's DHCP leases (dnsmasq's lease file) over SSH, as Ansible would connect."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from typing import Any

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


def _first(variables: dict[str, Any], *names: str) -> Any:
    for name in names:
        if variables.get(name) not in (None, ""):
            return variables[name]
    return None


def ssh_command(host_name: str, variables: dict[str, Any], remote: list[str]) -> list[str]:
    """The ssh argument list Ansible's ssh connection would use for this host (no shell)."""
    host = _first(variables, "ansible_host", "ansible_ssh_host") or host_name
    user = _first(variables, "ansible_user", "ansible_ssh_user")
    port = _first(variables, "ansible_port", "ansible_ssh_port")
    key = _first(variables, "ansible_ssh_private_key_file", "ansible_private_key_file")
    cmd = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    for extra in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        if variables.get(extra):
            cmd += shlex.split(str(variables[extra]))
    if port:
        cmd += ["-p", str(port)]
    if key:
        cmd += ["-i", str(key)]
    if user:
        cmd += ["-l", str(user)]
    return [*cmd, "--", str(host), shlex.join(remote)]


def read_leases(
    host_name: str, variables: dict[str, Any], timeout: float = SSH_TIMEOUT
) -> list[Lease]:
    """The current leases of one Pi."""
    remote = ["cat", LEASES_FILE]
    local = variables.get("ansible_connection") == "local"
    cmd = remote if local else ssh_command(host_name, variables, remote)
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise LeaseError(f"{host_name}: `{cmd[0]}` is not installed") from None
    except subprocess.TimeoutExpired:
        raise LeaseError(f"{host_name}: no answer over SSH within {timeout:g} s") from None
    if proc.returncode == 0:
        return parse_leases(proc.stdout)
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else f"exit {proc.returncode}"
    if "No such file" in last:
        raise LeaseError(f"{host_name}: no {LEASES_FILE} yet (run install; no client yet?)")
    if proc.returncode == 255 and not local:
        raise LeaseError(f"{host_name}: SSH failed: {last}")
    raise LeaseError(f"{host_name}: reading {LEASES_FILE} failed: {last}")
