"""`doctor`'s check that no install was left unfinished with services on their old files.

A run cut off (the laptop left the Wi-Fi) or failed after it replaced a file never runs that
file's restart: Ansible runs no handler on a host that failed. The Pi then serves the old
configuration while the new one is on disk, and nothing else would ever restart the service.
The snapshot tool on the Pi knows which services (`presence-snapshot pending`); the next
install restarts them first.
"""

from __future__ import annotations

import json
import re

from appliance.doctor_checks import FAIL, OK, WARN, Check, Sections, _first_line, _sec

PENDING_CHECK = "install:pending"
# What the Pi answers is read as hostile: only plain unit names are shown.
_UNIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._-]{0,63}")
NO_TOOL = 3  # the probe's code when no install has put the snapshot tool there yet


def check_pending(sections: Sections) -> list[Check]:
    sec = _sec(sections, PENDING_CHECK)
    if PENDING_CHECK not in sections or sec.rc == NO_TOOL:
        return []  # nothing installed yet (the service checks say so), or an older probe
    if sec.rc != 0:
        return [Check(PENDING_CHECK, WARN, "cannot read the snapshots: "
                      + _first_line(sec.text, f"exit {sec.rc}")[:200])]  # fmt: skip
    try:
        names = json.loads(sec.text)["pending"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return [Check(PENDING_CHECK, WARN, "the snapshot tool's answer is not understood")]
    if not names:
        return [
            Check(PENDING_CHECK, OK, "every install that replaced a file restarted its service")
        ]
    shown = [n if _UNIT.fullmatch(n) else "(unreadable name)" for n in names[:10]]
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return [
        Check(
            PENDING_CHECK,
            FAIL,
            "an unfinished install left "
            + ", ".join(shown)
            + more
            + " running on the old configuration",
            "run `presence-appliance install` again: it restarts them first",
        )
    ]
