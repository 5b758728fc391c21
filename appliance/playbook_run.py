"""Run the site playbook through ansible-runner and turn its events into plain progress data."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.content import roles_dir, site_playbook


@dataclass
class TaskResult:
    host: str
    task: str  # "role : task name"
    status: str  # ok | changed | failed | unreachable | skipped
    message: str = ""
    diff: str = ""  # unified diff of what the task changed (with --diff); may hold secrets
    stdout: str = ""  # a command's output, for commands that report data (may hold secrets)


@dataclass
class HostRecap:
    ok: int = 0
    changed: int = 0
    failures: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass
class PlaybookResult:
    status: str  # ansible-runner's: successful | failed | timeout | canceled
    rc: int
    recap: dict[str, HostRecap] = field(default_factory=dict)
    failures: list[TaskResult] = field(default_factory=list)
    changed: list[TaskResult] = field(default_factory=list)
    # Controller-side problem before any task ran (bad inventory syntax, missing playbook).
    error: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.rc == 0
            and not self.failures
            and all(r.failures == 0 and r.unreachable == 0 for r in self.recap.values())
        )


def _diff_text(res: dict[str, Any]) -> str:
    """Ansible's `diff` result (a dict or a list of them) as one unified diff."""
    import difflib

    diffs = res.get("diff")
    if isinstance(diffs, dict):
        diffs = [diffs]
    if not isinstance(diffs, list):
        return ""
    parts: list[str] = []
    for diff in diffs:
        if not isinstance(diff, dict):
            continue
        if isinstance(diff.get("prepared"), str):
            parts.append(diff["prepared"])
            continue
        before, after = diff.get("before", ""), diff.get("after", "")
        if not isinstance(before, str) or not isinstance(after, str) or before == after:
            continue
        parts.append(
            "".join(
                difflib.unified_diff(
                    before.splitlines(keepends=True),
                    after.splitlines(keepends=True),
                    fromfile=str(diff.get("before_header", "before")),
                    tofile=str(diff.get("after_header", "after")),
                )
            )
        )
    return "\n".join(p.rstrip("\n") for p in parts if p)


def _task_name(data: dict[str, Any]) -> str:
    role = data.get("role")
    task = data.get("task") or "?"
    return f"{role} : {task}" if role else task


# Where Ansible put the candidate file that `validate:` checked (its name means nothing to
# the user: the message names the live file instead).
_CANDIDATE = re.compile(r"\S*ansible-tmp-[^\s'\":]*")


def _validate_message(res: dict[str, Any]) -> str:
    """One line for a file its service's checker rejected: the file and the checker's reason."""
    args = (res.get("invocation") or {}).get("module_args") or {}
    dest = str(res.get("dest") or args.get("dest") or "the new file")
    reason = ""
    for key in ("stderr", "stdout"):
        lines = [ln.strip() for ln in str(res.get(key) or "").splitlines() if ln.strip()]
        if lines:
            reason = _CANDIDATE.sub(dest, lines[0])
            break
    return (
        f"{dest} rejected by its checker, the live file is unchanged: {reason or 'no reason given'}"
    )


# The ssh client's own notice when a command that ran under a tty ends; never the reason.
_SSH_NOTICE = re.compile(r"^Shared connection to \S+ closed\.$")


def _lines(value: object) -> list[str]:
    """VALUE's non-empty lines, without the ssh client's notices."""
    if not isinstance(value, str):
        return []
    lines = (line.strip() for line in value.splitlines())
    return [line for line in lines if line and not _SSH_NOTICE.match(line)]


def _message(res: dict[str, Any]) -> str:
    if res.get("msg") == "failed to validate":
        return _validate_message(res)
    if res.get("msg") == "non-zero return code":
        # A handler's test (`dnsmasq --test`, `nginx -t`) or a script: its reason beats
        # Ansible's summary. A script run with become gets a tty (ssh -tt), which sends its
        # stderr to stdout and leaves ssh's "Shared connection ... closed." as the stderr.
        reason = _lines(res.get("stderr")) or _lines(res.get("stdout"))
        if reason:
            return reason[0]
    for key in ("msg", "stderr", "module_stderr", "stdout"):
        lines = _lines(res.get(key))
        if lines:
            return lines[-1] if key in ("module_stderr",) else lines[0]
    results = res.get("results")
    if isinstance(results, list):  # a loop: report the first failed item
        for item in results:
            if isinstance(item, dict) and item.get("failed"):
                return _message(item)
    return "failed"


def run_site(
    inventory: Path,
    *,
    limit: str | None = None,
    check: bool = False,
    diff: bool = False,
    tags: str | None = None,
    vault_password_file: str | None = None,
    extra_vars: dict[str, Any] | None = None,
    on_task: Callable[[TaskResult], None] | None = None,
    on_task_start: Callable[[str], None] | None = None,
    playbook: Path | None = None,
) -> PlaybookResult:
    """Run playbooks/site.yml against INVENTORY; call ON_TASK for every host result as it happens."""
    import ansible_runner

    cmdline: list[str] = []
    if limit:
        cmdline += ["--limit", limit]
    if check:
        cmdline.append("--check")
    if diff:
        cmdline.append("--diff")
    if tags:
        cmdline += ["--tags", tags]
    if vault_password_file:
        cmdline += ["--vault-password-file", str(Path(vault_password_file).resolve())]

    result = PlaybookResult(status="failed", rc=1)

    def handle(event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {}) or {}
        if kind == "playbook_on_task_start" and on_task_start:
            on_task_start(_task_name(data))
        status = {
            "runner_on_ok": "ok",
            "runner_on_failed": "failed",
            "runner_on_unreachable": "unreachable",
            "runner_on_skipped": "skipped",
        }.get(kind)
        if status:
            res = data.get("res") or {}
            if status == "ok" and res.get("changed"):
                status = "changed"
            if status == "failed" and data.get("ignore_errors"):
                status = "ok"
            item = TaskResult(host=data.get("host", "?"), task=_task_name(data), status=status)
            if isinstance(res.get("stdout"), str):
                item.stdout = res["stdout"]
            if status in ("failed", "unreachable"):
                item.message = _message(res)
                result.failures.append(item)
            if status == "changed":
                result.changed.append(item)
                item.diff = _diff_text(res)
            if on_task:
                on_task(item)
        if kind == "playbook_on_stats":
            for key, attr in (
                ("ok", "ok"),
                ("changed", "changed"),
                ("failures", "failures"),
                ("dark", "unreachable"),
                ("skipped", "skipped"),
                ("rescued", "rescued"),
                ("ignored", "ignored"),
            ):
                for host, count in (data.get(key) or {}).items():
                    setattr(result.recap.setdefault(host, HostRecap()), attr, count)
        return False  # do not keep events on disk: they may hold templated values

    private = Path(tempfile.mkdtemp(prefix="presence-appliance-run-"))
    os.chmod(private, 0o700)
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private),
            playbook=str((playbook or site_playbook()).resolve()),
            inventory=str(inventory.resolve()),
            cmdline=shlex.join(cmdline) or None,
            extravars=extra_vars or None,
            envvars=_ansible_env(),
            event_handler=handle,
            quiet=True,
            suppress_env_files=True,
        )
        result.status = runner.status
        result.rc = runner.rc if runner.rc is not None else 1
        if result.rc != 0 and not result.failures and not result.recap:
            result.error = _last_error_line(runner)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return result


def _ansible_env() -> dict[str, str]:
    env = {
        "ANSIBLE_ROLES_PATH": str(roles_dir()),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
    }
    # ansible-playbook must be the one next to this Python (the venv's), not another on PATH.
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    return env


def _last_error_line(runner: Any) -> str:
    try:
        text = runner.stdout.read()
    except Exception:
        return "ansible-playbook failed before running any task"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("ERROR!", "[ERROR]")):
            return line
    return lines[-1] if lines else "ansible-playbook failed before running any task"
