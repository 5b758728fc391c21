"""Where the Ansible content (playbooks, roles, templates) is: inside the installed package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def content_root() -> Path:
    # The package holds playbooks/, roles/ and templates/ (symlinks in a checkout,
    # real folders in a wheel), so this works from any directory after `pip install .`.
    return Path(str(resources.files("appliance")))


def playbooks_dir() -> Path:
    return content_root() / "playbooks"


def roles_dir() -> Path:
    return content_root() / "roles"


def site_playbook() -> Path:
    return playbooks_dir() / "site.yml"
