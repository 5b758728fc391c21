"""cli.common.fail_playbook: what rollback and uninstall print when their playbook fails."""

from __future__ import annotations

import pytest

from appliance.cli.common import EXIT_INVALID, fail_playbook
from appliance.playbook_run import PlaybookResult, TaskResult


def hide(text: str) -> str:
    return text.replace("hunter2", "********")


def test_each_failed_task_is_one_redacted_line(capsys):
    failures = [
        TaskResult("pi-a", "web : htpasswd hunter2", "failed", "bad hunter2"),
        TaskResult("pi-b", "dhcp : test", "unreachable", "no route"),
    ]
    with pytest.raises(SystemExit) as ended:
        fail_playbook(PlaybookResult(status="failed", rc=2, failures=failures), hide)
    assert ended.value.code == EXIT_INVALID
    assert capsys.readouterr().err.splitlines() == [
        "error: pi-a: web : htpasswd ********: bad ********",
        "error: pi-b: dhcp : test: no route",
    ]


def test_without_a_failed_task_it_says_how_the_run_ended(capsys):
    with pytest.raises(SystemExit) as ended:
        fail_playbook(PlaybookResult(status="timeout", rc=254), hide)
    assert ended.value.code == EXIT_INVALID
    assert capsys.readouterr().err == "error: ansible-playbook ended with timeout\n"
