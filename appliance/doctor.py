"""`doctor`: diagnose every Pi of an inventory at once; each check is ok, warn or fail with a fix.

One ssh call per Pi gathers the facts (appliance.doctor_probe); appliance.doctor_checks
turns them into checks. This module runs the Pis side by side and assembles the report.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.content import roles_dir
from appliance.doctor_checks import (
    FAIL,
    OK,
    WARN,
    Check,
    Sections,
    check_configs,
    check_disk,
    check_firewall,
    check_hostapd_journal,
    check_leases,
    check_os,
    check_services,
    check_sudo,
    check_time,
    check_tls,
    parse_services,
)
from appliance.doctor_ftp import check_ftp, check_storage
from appliance.doctor_pending import check_pending
from appliance.doctor_probe import probe, probe_args
from appliance.doctor_remote import check_remote
from appliance.doctor_ssh import RemoteError
from appliance.secrets import Redactor, inventory_secrets


@dataclass
class ApplianceReport:
    name: str
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]


@dataclass
class DoctorReport:
    appliances: list[ApplianceReport]

    @property
    def ok(self) -> bool:
        return not any(a.failed for a in self.appliances)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "appliances": [
                {
                    "name": a.name,
                    "ok": not a.failed,
                    "checks": [c.as_dict() for c in a.checks],
                }
                for a in self.appliances
            ],
        }


def firewall_expected() -> bool:
    """The table is expected once this version of the package ships the firewall role."""
    return (roles_dir() / "firewall" / "tasks" / "main.yml").is_file()


def _target(name: str, variables: dict[str, Any]) -> str:
    host = variables.get("ansible_host") or name
    user = variables.get("ansible_user")
    return f"{user}@{host}" if user else str(host)


def diagnose(
    name: str,
    variables: dict[str, Any],
    sections: Sections,
    seconds: float,
    pin: Path | None,
    firewall: bool,
) -> list[Check]:
    """Every check of one Pi from its gathered facts (no I/O but reading the local pin)."""
    lab = bool(variables.get("appliance_lab"))
    user = str(variables.get("ansible_user") or "the SSH user")
    checks = [Check("ssh", OK, f"reachable as {_target(name, variables)} ({seconds:.1f} s)")]
    sudo = check_sudo(sections, user)
    checks.append(sudo)
    checks.append(check_os(sections, lab))
    if sudo.status == FAIL:
        return checks
    checks += check_services(sections, variables, firewall)
    checks += check_configs(sections)
    checks.append(check_hostapd_journal(sections, lab))
    checks += check_leases(sections, variables)
    services = sections.get("services")
    checks += check_time(sections, variables, parse_services(services.text if services else ""))
    checks += check_tls(sections, variables, pin)
    checks += check_disk(sections, probe_args(variables))
    checks += check_firewall(sections, firewall)
    checks += check_pending(sections)
    checks += check_remote(sections, variables, name)
    checks += check_storage(sections, variables)
    checks += check_ftp(sections, variables, name)
    return checks


def doctor_appliance(inventory: Any, appliance: Any, timeout: float) -> ApplianceReport:
    from appliance.check import pinned_cert_path

    report = ApplianceReport(appliance.name)
    try:
        result = probe(appliance.name, appliance.vars, timeout=timeout)
    except RemoteError as err:
        report.checks.append(
            Check(
                "ssh",
                FAIL,
                f"cannot reach {_target(appliance.name, appliance.vars)}: {err}",
                "is the Pi on and on the network? try `ssh` with the same user and key "
                "(ansible_host, ansible_user, ansible_ssh_private_key_file)",
            )
        )
        return report
    pin = pinned_cert_path(inventory, appliance.name, appliance.vars)
    report.checks = diagnose(
        appliance.name,
        appliance.vars,
        result.sections,
        result.seconds,
        pin,
        firewall_expected(),
    )
    return report


def run_doctor(inventory: Any, timeout: float = 60.0) -> DoctorReport:
    """Diagnose every appliance concurrently; secrets are masked in every message."""
    appliances = list(inventory.appliances)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(appliances)))) as pool:
        reports = list(pool.map(lambda a: doctor_appliance(inventory, a, timeout), appliances))
    redact = Redactor()
    for appliance in appliances:
        redact.add(inventory_secrets(appliance.vars))
    for report in reports:
        report.checks = [
            Check(c.name, c.status, printable(redact(c.message)), printable(redact(c.fix)))
            for c in report.checks
        ]
    return DoctorReport(reports)


MAX_MESSAGE = 400
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Text from the Pi goes to a terminal: no control characters (escape sequences could
    rewrite the screen), one line, bounded length."""
    text = _CONTROL.sub("?", " ".join(text.split()))
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


STATUS_LABEL = {OK: "ok", WARN: "WARN", FAIL: "FAIL"}


def render_lines(report: DoctorReport) -> list[str]:
    """The report as text lines: one header per Pi, one line per check (fix after `->`)."""
    lines: list[str] = []
    width = max(
        (len(c.name) for a in report.appliances for c in a.checks),
        default=10,
    )
    for appliance in report.appliances:
        fails = len(appliance.failed)
        warns = sum(1 for c in appliance.checks if c.status == WARN)
        lines.append(f"{appliance.name}: {fails} failed, {warns} warnings")
        for check in appliance.checks:
            line = f"  {STATUS_LABEL[check.status]:<4}  {check.name:<{width}}  {check.message}"
            if check.fix and check.status != OK:
                line += f"  -> {check.fix}"
            lines.append(line)
    return lines
