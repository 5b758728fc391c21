"""install's one line for a file its service's checker rejected (appliance.playbook_run)."""

from __future__ import annotations

from appliance.playbook_run import _message


def test_a_rejected_file_is_named_with_the_checkers_reason() -> None:
    res = {
        "failed": True,
        "msg": "failed to validate",
        "exit_status": 1,
        "stderr": (
            "dnsmasq: bad dhcp-range at line 41 of "
            "/root/.ansible/tmp/ansible-tmp-1796049947.00-23114-1273/.source.conf\n"
        ),
        "stdout": "",
        "invocation": {"module_args": {"dest": "/etc/dnsmasq.d/cameras.conf"}},
    }
    assert _message(res) == (
        "/etc/dnsmasq.d/cameras.conf rejected by its checker, the live file is unchanged: "
        "dnsmasq: bad dhcp-range at line 41 of /etc/dnsmasq.d/cameras.conf"
    )


def test_the_checkers_first_line_wins_even_on_stdout() -> None:
    res = {
        "msg": "failed to validate",
        "stderr": "",
        "stdout": "nginx: [emerg] invalid port in upstream\nnginx: configuration file test failed\n",
        "dest": "/etc/nginx/nginx.conf",
    }
    assert _message(res).endswith(": nginx: [emerg] invalid port in upstream")


def test_a_failed_test_command_shows_its_reason_not_ansibles_summary() -> None:
    res = {
        "msg": "non-zero return code",
        "rc": 1,
        "stderr": "\ndnsmasq: bad dhcp-range at line 1 of /etc/dnsmasq.d/zz.conf\n",
    }
    assert _message(res) == "dnsmasq: bad dhcp-range at line 1 of /etc/dnsmasq.d/zz.conf"


def test_the_line_number_after_the_candidate_path_is_kept() -> None:
    res = {
        "msg": "failed to validate",
        "stderr": "/root/.ansible/tmp/ansible-tmp-17.5-1-2/.source.nft:88:1-15: Error: syntax error\n",
        "dest": "/etc/presence-appliance/firewall.nft",
    }
    assert _message(res).endswith(
        ": /etc/presence-appliance/firewall.nft:88:1-15: Error: syntax error"
    )


def test_a_script_refusal_over_ssh_shows_the_scripts_line_not_sshs_notice() -> None:
    # What Ansible's `script` module returns with become over ssh: the script ran under a tty
    # (ssh -tt), so its stderr arrived on stdout, and ssh's own notice is the only stderr.
    res = {
        "msg": "non-zero return code",
        "rc": 1,
        "stderr": "Shared connection to 10.203.1.2 closed.\r\n",
        "stdout": "presence-uninstall: no record of this Pi before install: nothing changed\r\n",
    }
    assert _message(res) == (
        "presence-uninstall: no record of this Pi before install: nothing changed"
    )


def test_sshs_notice_alone_is_never_the_message() -> None:
    res = {"msg": "MODULE FAILURE", "module_stderr": "Shared connection to 10.203.1.2 closed.\r\n"}
    assert _message(res) == "MODULE FAILURE"
    assert _message({"module_stderr": "Shared connection to pi closed.\n"}) == "failed"
