"""The `presence-appliance` command: a lazy click group so `--help` never imports Ansible."""

from __future__ import annotations

import importlib
import importlib.util

import click

from appliance import __version__

# name -> (module, attribute, one-line help). Each command group lives in its own
# module and is imported only when it runs: importing Ansible costs ~0.4 s.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": (
        "appliance.cli.inventory_cmds",
        "validate",
        "Check an inventory and list every problem.",
    ),
    "render": (
        "appliance.cli.inventory_cmds",
        "render",
        "Write the files the roles would put on a Pi.",
    ),
    "install": (
        "appliance.cli.install_cmd",
        "install",
        "Provision the appliances of an inventory.",
    ),
    "rollback": (
        "appliance.cli.rollback_cmd",
        "rollback",
        "Restore the files the last install replaced (checked first).",
    ),
    "uninstall": (
        "appliance.cli.uninstall_cmd",
        "uninstall",
        "Return each Pi to how it was before the first install.",
    ),
    "check": ("appliance.cli.check_cmd", "check", "Test every camera and report what works."),
    "camera": ("appliance.cli.camera_cmds", "camera", "Control cameras and edit the camera list."),
    "discover": (
        "appliance.cli.discover_cmd",
        "discover",
        "Find cameras and secure ids from Netatmo's API.",
    ),
    "leases": ("appliance.cli.discover_cmd", "leases", "List the DHCP clients of each Pi."),
    "init": (
        "appliance.cli.init_cmd",
        "init",
        "Ask a few questions, check the Pi, write a vaulted inventory.",
    ),
    "doctor": (
        "appliance.cli.doctor_cmd",
        "doctor",
        "Diagnose every Pi: what is wrong, how to fix it.",
    ),
    "remote": (
        "appliance.cli.remote_cmd",
        "remote",
        "Remote viewing over WireGuard: add, list and remove phones.",
    ),
    "firewall": (
        "appliance.cli.firewall_cmd",
        "firewall",
        "Show per camera what each Pi's firewall allowed and dropped.",
    ),
    "recordings": (
        "appliance.cli.recordings_cmd",
        "recordings",
        "List and prune the cameras' recordings on each Pi.",
    ),
    "emulate": (
        "appliance.cli.emulate_cmd",
        "emulate",
        "Run an emulated Presence camera (for tests).",
    ),
    "lab": (
        "appliance.cli.lab_cmds",
        "lab",
        "A booted Debian 'Pi' with emulated cameras to try it all.",
    ),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr, _ = COMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:
                return None
            raise
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(name: str) -> bool:
    spec = importlib.util.find_spec(COMMANDS[name][0])
    return spec is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="presence-appliance")
def main() -> None:
    """Provision a Raspberry Pi as the Wi-Fi access point, DHCP/NTP server,
    HTTPS proxy and firewall of Netatmo Presence cameras, from a YAML inventory."""
