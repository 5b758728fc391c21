"""Password hashes (issue 11 §4): a random salt, bcrypt that nginx really accepts, kept while it verifies.

The role's tasks/logins.yml runs for real (ansible-playbook on this machine, the real
htpasswd); nginx's acceptance of each crypt(3) scheme is checked by a real nginx.
"""

from __future__ import annotations

import crypt  # Python < 3.13 (libxcrypt): old sha512-crypt and yescrypt hashes to test with
import json
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.web.site import REPO, VENV_BIN, WebSite, build_site

pytestmark = pytest.mark.netns

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: /usr/bin/python3
    web_htpasswd_file: {htpasswd}
    web_password_cost: 5
    web: {{users: {users}}}
  tasks:
    - ansible.builtin.import_tasks: {tasks}
    - ansible.builtin.copy:
        dest: {out}
        content: "{{{{ web_password_hashes | to_json }}}}"
        mode: "0600"
    - ansible.builtin.copy:
        dest: {htpasswd}
        content: "{{% for k, v in web_password_hashes.items() %}}{{{{ k }}}}:{{{{ v }}}}\\n{{% endfor %}}"
        mode: "0600"
"""


def run_logins(tmp_path: Path, users: list[dict[str, str]]) -> dict[str, str]:
    """Run the role's tasks/logins.yml against tmp_path/htpasswd; return the hashes it chose."""
    out = tmp_path / "hashes.json"
    play = tmp_path / "play.yml"
    play.write_text(
        PLAY.format(
            htpasswd=tmp_path / "htpasswd",
            users=json.dumps(users),
            tasks=REPO / "roles/web/tasks/logins.yml",
            out=out,
        )
    )
    result = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), str(play)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    for user in users:  # no_log: no password in Ansible's output
        assert user["password"] not in result.stdout + result.stderr
    return json.loads(out.read_text())


def test_random_salt_kept_while_the_password_verifies(tmp_path: Path) -> None:
    users = [
        {"name": "alice", "password": "same password"},
        {"name": "bob", "password": "same password"},
    ]
    first = run_logins(tmp_path, users)
    # bcrypt with a random salt: the same password gives two different hashes.
    assert all(h.startswith("$2y$05$") for h in first.values()), first
    assert first["alice"] != first["bob"]
    # A second run keeps the stored hashes (the idempotence), however random they were.
    assert run_logins(tmp_path, users) == first
    # A changed password gets a new hash; the other user's stays.
    users[0]["password"] = "a new one"
    third = run_logins(tmp_path, users)
    assert third["alice"] != first["alice"] and third["bob"] == first["bob"]
    check = subprocess.run(
        ["htpasswd", "-v", "-i", str(tmp_path / "htpasswd"), "alice"],
        input="a new one",
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert check.returncode == 0, check.stderr


def test_an_old_predictable_hash_is_replaced(tmp_path: Path) -> None:
    # Today's sha512-crypt hashes (salt from host and user) are not kept, even when they verify.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = crypt.crypt("pw", "$6$rounds=5000$0123456789abcdef$")
    (tmp_path / "htpasswd").write_text(f"alice:{old}\n")
    hashes = run_logins(tmp_path, [{"name": "alice", "password": "pw"}])
    assert hashes["alice"].startswith("$2y$") and hashes["alice"] != old


@pytest.fixture(scope="module")
def site() -> Iterator[WebSite]:
    root = Path(f"/tmp/paw-web-{uuid.uuid4().hex[:6]}")
    built = build_site(root, cameras=(), evil=False)
    try:
        yield built
    finally:
        built.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def test_which_schemes_nginx_accepts(site: WebSite) -> None:
    """bcrypt ($2y$, what the role makes) and yescrypt ($y$) both pass nginx's crypt() here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        schemes = {
            "bcrypt": crypt.crypt(
                "pw bcrypt", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=32)
            ).replace("$2b$", "$2y$", 1),
            "yescrypt": crypt.crypt("pw yescrypt", "$y$j9T$" + uuid.uuid4().hex[:16] + "$"),
        }
    htpasswd = site.root / "etc/nginx/presence-appliance.htpasswd"
    htpasswd.write_text("".join(f"{name}:{hashed}\n" for name, hashed in schemes.items()))
    try:
        for name in schemes:
            with httpx.Client(verify=site.tls_context(), timeout=10) as client:
                right = client.get(f"{site.base_url}/", auth=(name, f"pw {name}"))
                wrong = client.get(f"{site.base_url}/", auth=(name, "nope"))
            assert (right.status_code, wrong.status_code) == (200, 401), name
    finally:
        site.render()
