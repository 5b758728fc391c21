"""`camera ftp NAME on|off`: the FTP export set over the local API (emulated camera), the app's
fallback when the camera refuses, and hostile camera answers (one clean line, no password)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from click.testing import CliRunner

from appliance.cli import main
from tests.day2.conftest import camera_entry, inventory_text, write_inventory
from tests.day2.hostile_camera import (
    HostileCamera,
    Peer,
    Seen,
    answer,
    drip,
    endless,
    head,
    hostile_camera,
    json_answer,
)
from tests.day2.test_check_hostile import bounded

FTP_PASSWORD = "ftp&Pass word/4711"  # characters that URL-encoding changes
RECORDINGS = {"recordings": {"path": "/srv/presence-recordings"}}
TIMEOUT = "2"
GET, SET = "command/ftp_get_config", "command/ftp_set_config"


def ftp_camera(entry: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {**entry, "recordings": True, "ftp_password": FTP_PASSWORD, **overrides}


def invoke(inventory: Path, *args: str) -> Any:
    argv = ["camera", "ftp", *args, "-i", str(inventory), "--direct", "--timeout", TIMEOUT]
    return bounded(lambda: CliRunner().invoke(main, argv))


def clean(result: Any, *secrets: str) -> None:
    """Nothing a camera could abuse, and no secret, in anything printed."""
    for text in (result.stdout, result.stderr):
        assert "Traceback" not in text
        assert FTP_PASSWORD not in text and "ftp%26Pass" not in text and "ftp&Pass" not in text
        for secret in secrets:
            assert secret not in text
        assert "\x1b" not in text and "\x07" not in text


# --- against the emulated camera -----------------------------------------------------------


def emulator_state(camera: Any) -> dict[str, Any]:
    return httpx.get(f"{camera.control_url}/state", timeout=5).json()["ftp"]["config"]


def test_on_sets_the_pis_address_the_cameras_account_and_keeps_the_password_quiet(
    make_cameras: Any, tmp_path: Path
) -> None:
    (camera,) = make_cameras(1)
    inventory = write_inventory(tmp_path, [ftp_camera(camera_entry(camera))], **RECORDINGS)
    result = invoke(inventory, camera.name, "on")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"{camera.name}: FTP export on (to 10.42.0.1:21 as cam-{camera.name}, path /)\n"
    )
    clean(result, camera.secure_id)
    got = httpx.get(f"{camera.base_url}/command/ftp_get_config", timeout=5).json()
    assert got == {
        "on_off": 1,
        "server": "10.42.0.1",
        "port": 21,
        "user": f"cam-{camera.name}",
        "password": FTP_PASSWORD,
        "path": "/",
    }


def test_off_switches_only_the_export_off(make_cameras: Any, tmp_path: Path) -> None:
    (camera,) = make_cameras(1)
    inventory = write_inventory(tmp_path, [ftp_camera(camera_entry(camera))], **RECORDINGS)
    assert invoke(inventory, camera.name, "on").exit_code == 0
    result = invoke(inventory, camera.name, "off")
    assert result.exit_code == 0 and result.stdout == f"{camera.name}: FTP export off\n"
    config = emulator_state(camera)
    assert config["on_off"] == 0 and config["user"] == f"cam-{camera.name}"


def test_off_works_for_a_camera_whose_recordings_were_removed(
    make_cameras: Any, tmp_path: Path
) -> None:
    (camera,) = make_cameras(1)
    inventory = write_inventory(tmp_path, [camera_entry(camera)])
    assert invoke(inventory, camera.name, "off").exit_code == 0


@pytest.mark.parametrize(
    ("entry", "extra", "message"),
    [
        ({}, RECORDINGS, "camera {name} has no `recordings: true`"),
        ({"recordings": True}, RECORDINGS, "ftp_password: missing"),
        (
            {"recordings": True, "ftp_password": FTP_PASSWORD},
            {},
            "the appliance has no `recordings`",
        ),
    ],
)
def test_on_without_an_ftp_account_is_one_line_and_asks_the_camera_nothing(
    make_cameras: Any, tmp_path: Path, entry: dict[str, Any], extra: dict[str, Any], message: str
) -> None:
    (camera,) = make_cameras(1)
    inventory = write_inventory(tmp_path, [{**camera_entry(camera), **entry}], **extra)
    result = invoke(inventory, camera.name, "on")
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1
    assert message.format(name=camera.name) in result.output
    clean(result)
    assert httpx.get(f"{camera.control_url}/stats", timeout=5).json()["kinds"]["commands"] == 0


# --- the app's fallback, and a hostile camera ---------------------------------------------


@pytest.fixture
def evil() -> Iterator[HostileCamera]:
    with hostile_camera(host="127.0.0.1") as server:
        yield server


def evil_inventory(tmp_path: Path, camera: HostileCamera) -> Path:
    entry = {
        "name": camera.name,
        "mac": "70:ee:50:00:00:01",
        "ip": camera.host,
        "port": camera.port,
        "secure_id": camera.secure_id,
        "recordings": True,
        "ftp_password": FTP_PASSWORD,
    }
    path = tmp_path / "inventory.yml"
    path.write_text(inventory_text([entry], **RECORDINGS))
    return path


def app_values(stdout: str) -> dict[str, str]:
    return {
        key.strip(): value.strip()
        for key, sep, value in (line.partition(":") for line in stdout.splitlines()[1:])
        if sep
    }


def test_a_camera_without_the_command_gets_the_apps_values(
    evil: HostileCamera, tmp_path: Path
) -> None:
    # The hostile camera starts healthy, but knows no ftp_* command (HTML 404, like a camera).
    result = invoke(evil_inventory(tmp_path, evil), evil.name, "on")
    assert result.exit_code == 1
    clean(result, evil.secure_id)
    assert result.stderr.startswith(f"{evil.name}: the camera did not take the FTP settings")
    values = app_values(result.stdout)
    assert values["server"] == "10.42.0.1" and values["port"] == "21"
    assert values["user"] == f"cam-{evil.name}" and values["path"] == "/"
    assert "ftp_password" in values["password"] and "--show-password" in values["password"]
    assert [s for s in evil.requests if s.path.endswith("ftp_set_config")] == []


def test_show_password_prints_it_for_the_app(evil: HostileCamera, tmp_path: Path) -> None:
    result = invoke(evil_inventory(tmp_path, evil), evil.name, "on", "--show-password")
    assert result.exit_code == 1
    assert app_values(result.stdout)["password"] == FTP_PASSWORD
    assert FTP_PASSWORD not in result.stderr


def _stored_camera(evil: HostileCamera, initial: dict[str, Any], keeps: bool) -> dict[str, Any]:
    """Script a camera that answers get/set; KEEPS: whether a set changes what get says."""
    stored = {"config": initial}

    def get(seen: Seen, peer: Peer) -> None:
        json_answer(stored["config"])(seen, peer)

    def put(seen: Seen, peer: Peer) -> None:
        if keeps:
            stored["config"] = json.loads(parse_qs(urlsplit(seen.target).query)["config"][0])
        json_answer({"status": "ok"})(seen, peer)

    evil.routes[GET] = get
    evil.routes[SET] = put
    return stored


def test_fields_the_camera_has_besides_ours_are_written_back(
    evil: HostileCamera, tmp_path: Path
) -> None:
    stored = _stored_camera(evil, {"on_off": 0, "ftps": 0, "server": "old.example"}, keeps=True)
    result = invoke(evil_inventory(tmp_path, evil), evil.name, "on")
    assert result.exit_code == 0, result.output
    assert stored["config"]["ftps"] == 0 and stored["config"]["server"] == "10.42.0.1"
    # Written with POST, the whole object in `config`.
    (sent,) = [s for s in evil.requests if s.path.endswith("ftp_set_config")]
    assert sent.method == "POST"


def test_a_camera_that_does_not_keep_the_settings_gets_the_apps_values(
    evil: HostileCamera, tmp_path: Path
) -> None:
    _stored_camera(evil, {"on_off": 0}, keeps=False)
    result = invoke(evil_inventory(tmp_path, evil), evil.name, "on")
    assert result.exit_code == 1
    assert "did not keep the new FTP settings" in result.stderr
    assert app_values(result.stdout)["user"] == f"cam-{evil.name}"
    clean(result, evil.secure_id)


@pytest.mark.parametrize(
    ("route", "behaviour", "reason"),
    [
        (GET, json_answer([1, 2]), "ftp_get_config: unexpected answer"),
        (GET, answer(200, "text/html", "<html>nope</html>"), "HTML page instead of JSON"),
        (GET, answer(200, "application/json", "[" * 30_000), "answer is not JSON"),
        (GET, endless("application/json", b" ", length=10**9), "more than 64 kB"),
        (GET, endless("application/json", b"[1,"), "answer longer than 64 kB"),
        (GET, answer(200, "text/plain", "{}"), "content type text/plain"),
        (GET, json_answer({"on_off": 0, "junk": "x" * 5000}), "longer than 2048 characters"),
        (
            SET,
            json_answer({"error": {"code": 21, "message": f"bad \x1b[2J\n{FTP_PASSWORD}"}}, 400),
            "HTTP 400, camera error 21: bad ?[2J?<password>",
        ),
        (
            SET,
            json_answer({"error": {"code": 1, "message": "ftp%26Pass%20word%2F4711"}}, 400),
            "camera error 1: <password>",
        ),
    ],
)
def test_hostile_answers_end_in_the_apps_values_and_one_clean_line(
    evil: HostileCamera, tmp_path: Path, route: str, behaviour: Any, reason: str
) -> None:
    if route == SET:
        evil.routes[GET] = json_answer({"on_off": 0})
    evil.routes[route] = behaviour
    result = invoke(evil_inventory(tmp_path, evil), evil.name, "on")
    assert result.exit_code == 1, result.output
    clean(result, evil.secure_id)
    assert len(result.stderr.splitlines()) == 1
    assert reason in result.stderr, result.stderr
    assert app_values(result.stdout)["server"] == "10.42.0.1"
    if route == GET:
        assert [s for s in evil.requests if s.path.endswith("ftp_set_config")] == []


def test_a_camera_that_drips_is_a_timeout_not_a_refusal(
    evil: HostileCamera, tmp_path: Path
) -> None:
    evil.routes[GET] = drip(head(200, {"Content-Type": "application/json"}) + b'{"on_off"')
    result = invoke(evil_inventory(tmp_path, evil), evil.name, "on")
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"error: {evil.name}: no answer within {TIMEOUT} s"]
    clean(result, evil.secure_id)


def test_a_vaulted_ftp_password_is_decrypted_and_sent(make_cameras: Any, tmp_path: Path) -> None:
    (camera,) = make_cameras(1)
    password_file = tmp_path / "vault-pass"
    password_file.write_text("correct horse battery staple\n")
    encrypted = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-vault"), "encrypt_string",
         "--vault-password-file", str(password_file), FTP_PASSWORD],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    body = [line.strip() for line in encrypted.splitlines()[1:]]
    inventory = write_inventory(
        tmp_path, [ftp_camera(camera_entry(camera), ftp_password="VAULTED")], **RECORDINGS
    )
    lines = []
    for line in inventory.read_text().splitlines():
        if line.strip() == "ftp_password: VAULTED":
            indent = " " * (len(line) - len(line.lstrip()) + 2)
            lines.append(line.replace("VAULTED", "!vault |"))
            lines += [indent + part for part in body]
        else:
            lines.append(line)
    inventory.write_text("\n".join(lines) + "\n")
    assert FTP_PASSWORD not in inventory.read_text()
    argv = ["camera", "ftp", camera.name, "on", "-i", str(inventory), "--direct"]
    argv += ["--vault-password-file", str(password_file)]
    result = bounded(lambda: CliRunner().invoke(main, argv))
    assert result.exit_code == 0, result.output
    clean(result)
    got = httpx.get(f"{camera.base_url}/command/ftp_get_config", timeout=5).json()
    assert got["password"] == FTP_PASSWORD
