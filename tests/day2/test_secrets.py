"""Secret scan: no day-2 command prints a secure id (unless --show-secrets), whatever goes wrong."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from appliance.cli import main
from tests.day2.conftest import camera_entry, write_inventory

FIXTURES = Path(__file__).parent / "fixtures"
HEX32 = re.compile(r"[0-9a-f]{32}")


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output, result.output
    return result.output


def test_no_command_prints_a_secure_id(make_cameras, tmp_path):
    cameras = make_cameras(7)
    healthy, html, garbage, down, hang, closed, stopped = cameras
    html.faults.set("html200")
    garbage.faults.set("garbage")
    down.faults.set("down")
    hang.faults.set("hang")
    closed.faults.set("down", path="live/")
    stopped.stop()
    entries = [camera_entry(c) for c in cameras]
    wrong = camera_entry(healthy, secure_id="f" * 32)
    wrong["name"] = "wrong-key"
    inventory = write_inventory(tmp_path, [*entries, wrong])
    secrets = {c.secure_id for c in cameras} | {"f" * 32}

    outputs = [
        run("check", "-i", str(inventory), "--direct", "--timeout", "1"),
        run("check", "-i", str(inventory), "--direct", "--timeout", "1", "--json"),
        run("check", "-i", str(inventory), "--timeout", "1"),  # proxy mode: no pin
        run("camera", "list", "-i", str(inventory)),
    ]
    for camera in (*cameras, healthy):
        for command in (
            ["monitoring", camera.name, "off"],
            ["floodlight", camera.name, "on"],
            ["snapshot", camera.name, "-o", str(tmp_path / "s.jpg")],
        ):
            outputs.append(
                run("camera", *command, "-i", str(inventory), "--direct", "--timeout", "0.5")
            )
    outputs.append(
        run("camera", "monitoring", "wrong-key", "off", "-i", str(inventory), "--direct")
    )
    text = "\n".join(outputs)
    for secret in secrets:
        assert secret not in text
    # Our failure reasons made it out (so the scan covered the error paths).
    for reason in (
        "HTML page instead of JSON (HTTP 403)",
        "answer is not JSON",
        "no answer within",
        "connection refused",
        "HTML page instead of JSON (HTTP 200)",
    ):
        assert reason in text, reason


def test_inventory_and_discover_outputs(tmp_path):
    inventory = tmp_path / "inventory.yml"
    shutil.copy(FIXTURES / "inventory.yml", inventory)
    vault = str(FIXTURES / "vault-password")
    new_id = "5" * 32
    outputs = [
        run("camera", "list", "-i", str(inventory), "--vault-password-file", vault),
        run(
            "camera",
            "add",
            "porch",
            "--mac",
            "70:ee:50:00:00:04",
            "--secure-id",
            new_id,
            "-i",
            str(inventory),
            "--vault-password-file",
            vault,
        ),
        run(
            "camera",
            "set",
            "side",
            f"secure_id={'6' * 32}",
            "-i",
            str(inventory),
            "--vault-password-file",
            vault,
        ),
        run(
            "camera",
            "add",
            "dup",
            "--mac",
            "70:ee:50:00:00:04",
            "--secure-id",
            "7" * 32,
            "-i",
            str(inventory),
            "--vault-password-file",
            vault,
        ),
        run(
            "discover",
            "--from",
            str(FIXTURES / "gethomedata.json"),
            "-i",
            str(inventory),
            "--vault-password-file",
            vault,
        ),
        run(
            "discover",
            "--from",
            str(FIXTURES / "homes.json"),
            "--write",
            "-i",
            str(inventory),
            "--vault-password-file",
            vault,
        ),
    ]
    text = "\n".join(outputs)
    assert HEX32.findall(text) == []
    shown = run("discover", "--from", str(FIXTURES / "gethomedata.json"), "--show-secrets")
    assert "9f86d081884c7d659a2feaa0c55ad015" in shown  # the one way to see them
