"""`presence-appliance discover` from saved answers and from a stand-in cloud API on loopback."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.cli import main
from appliance.discover import secure_id_from_vpn_url
from appliance.inventory import load_inventory
from tests.cli_checks import assert_no_crash

FIXTURES = Path(__file__).parent / "fixtures"
DRIVE_ID = "9f86d081884c7d659a2feaa0c55ad015"
GARDEN_ID = "7c4a8d09ca3762af61e59520943dc264"
TOKEN = "5c3f0a1b2c3d4e5f|0123456789abcdef0123456789abcdef"


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["discover", *args], env=env)
    assert_no_crash(result)
    return result.exit_code, result.output


def table_rows(output: str) -> dict[str, list[str]]:
    """mac -> the row's cells (split on runs of 2+ spaces)."""
    import re

    rows = {}
    for line in output.splitlines()[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 6:
            rows[cells[2]] = cells
    return rows


def test_vpn_url_parsing():
    url = f"https://prodvpn-eu-2.netatmo.net/restricted/10.255.123.45/{DRIVE_ID}/MTU4,,"
    assert secure_id_from_vpn_url(url) == DRIVE_ID
    assert secure_id_from_vpn_url("https://example.org/") is None
    assert secure_id_from_vpn_url(None) is None
    assert secure_id_from_vpn_url(f"https://vpn/10.255.1.2/{DRIVE_ID}/tok,,") == DRIVE_ID


@pytest.mark.parametrize("fixture", ["gethomedata.json", "homes.json"])
def test_from_saved_answers(fixture, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./inventory.yml: the inventory column is left out
    monkeypatch.delenv("PRESENCE_INVENTORY", raising=False)
    code, output = cli("--from", str(FIXTURES / fixture))
    assert code == 0, output
    rows = table_rows(output)
    assert rows["70:ee:50:00:00:01"][:5] == [
        "Drive",
        "Maison",
        "70:ee:50:00:00:01",
        "Presence",
        "found",
    ]
    # MACs are lower-cased even when the cloud sends them upper-case.
    assert rows["70:ee:50:00:00:07"][4] == "found"
    assert DRIVE_ID not in output and GARDEN_ID not in output
    assert rows["70:ee:50:00:00:01"][5] == "-"
    if fixture == "gethomedata.json":
        assert rows["70:ee:50:00:00:08"][3:5] == ["Welcome", "NOT FOUND"]
        assert "note: Salon: no vpn_url" in output
    else:
        assert "70:ee:50:aa:bb:cc" not in rows  # the weather station is no camera


def test_show_secrets(tmp_path):
    code, output = cli("--from", str(FIXTURES / "gethomedata.json"), "--show-secrets")
    assert code == 0
    assert table_rows(output)["70:ee:50:00:00:01"][4] == DRIVE_ID


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ('{"body": {"devices": []}}', "neither a gethomedata answer"),
        ("[1, 2]", "neither a gethomedata answer"),
    ],
)
def test_bad_saved_files(tmp_path, content, message):
    path = tmp_path / "answer.json"
    path.write_text(content)
    code, output = cli("--from", str(path))
    assert code == 2  # unreadable input
    assert output.startswith(f"error: {path}: ") and message in output
    assert len(output.strip().splitlines()) == 1


def test_needs_exactly_one_source():
    code, output = cli()
    assert code == 2 and "either --from FILE or --token" in output


def test_write_merges_into_the_inventory(tmp_path):
    inventory = tmp_path / "inventory.yml"
    shutil.copy(FIXTURES / "inventory.yml", inventory)
    vault = FIXTURES / "vault-password"
    before = inventory.read_text()
    code, output = cli(
        "--from",
        str(FIXTURES / "gethomedata.json"),
        "--write",
        "-i",
        str(inventory),
        "--vault-password-file",
        str(vault),
    )
    assert code == 0, output
    assert "added allee-du-jardin (70:ee:50:00:00:07, 10.42.0.2, cloud: block)" in output
    assert "skipped Salon (70:ee:50:00:00:08): no secure id found" in output
    after = inventory.read_text()
    assert after.startswith(before)  # only appended: nothing the user wrote was touched
    cameras = load_inventory(inventory, str(vault)).appliances[0].vars["cameras"]
    assert [c["name"] for c in cameras] == ["drive", "back", "side", "allee-du-jardin"]
    assert cameras[-1]["secure_id"] == GARDEN_ID and cameras[-1]["cloud"] == "block"
    assert GARDEN_ID not in after and GARDEN_ID not in output  # vault-encrypted
    # A second run changes nothing.
    code, output = cli(
        "--from",
        str(FIXTURES / "gethomedata.json"),
        "--write",
        "-i",
        str(inventory),
        "--vault-password-file",
        str(vault),
    )
    assert code == 0 and "nothing to change" in output
    assert inventory.read_text() == after


def test_write_updates_a_secure_id_matched_by_mac(tmp_path):
    inventory = tmp_path / "inventory.yml"
    text = (FIXTURES / "inventory.yml").read_text()
    # `side` becomes the garden camera's MAC with a stale secure id.
    inventory.write_text(text.replace("mac: 70:ee:50:00:00:03", 'mac: "70:EE:50:00:00:07"'))
    before = inventory.read_text()
    code, output = cli(
        "--from",
        str(FIXTURES / "homes.json"),
        "--write",
        "-i",
        str(inventory),
        "--vault-password-file",
        str(FIXTURES / "vault-password"),
    )
    assert code == 0, output
    assert "updated the secure id of side (70:ee:50:00:00:07)" in output
    changed = [
        (a, b)
        for a, b in zip(before.splitlines(), inventory.read_text().splitlines(), strict=False)
        if a != b
    ]
    # Only the secure_id line changed (it is now a vault block, so the file grew).
    assert changed[0] == (
        '            secure_id: "0123456789abcdef0123456789abcdef"',
        "            secure_id: !vault |",
    )
    camera = (
        load_inventory(inventory, str(FIXTURES / "vault-password")).appliances[0].vars["cameras"][2]
    )
    assert camera["secure_id"] == GARDEN_ID and camera["mac"] == "70:EE:50:00:00:07"


# ---------------------------------------------------------------------------
# A stand-in for Netatmo's API on loopback


class FakeCloud:
    """Answers /api/... from a table of (status, body) per path; records what it was asked."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.requests: list[tuple[str, str]] = []
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                cloud.requests.append((self.path, self.headers.get("Authorization", "")))
                status, body = cloud.routes.get(path, (404, b'{"error":{"code":404}}'))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, path: str, status: int, body: Any) -> None:
        self.routes[path] = (status, body if isinstance(body, bytes) else json.dumps(body).encode())


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    fake = FakeCloud()
    thread = threading.Thread(target=fake.server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
        thread.join(timeout=5)


def saved(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_token_with_gethomedata(cloud):
    cloud.route("/api/gethomedata", 200, saved("gethomedata.json"))
    code, output = cli("--token", TOKEN, "--api-url", cloud.url)
    assert code == 0, output
    assert table_rows(output)["70:ee:50:00:00:01"][4] == "found"
    assert cloud.requests == [("/api/gethomedata", f"Bearer {TOKEN}")]
    assert TOKEN not in output


def test_token_from_environment_falls_back_to_homesdata(cloud):
    homes = saved("homes.json")
    cloud.route("/api/homesdata", 200, homes["homesdata"])
    cloud.route("/api/homestatus", 200, homes["homestatus"])
    code, output = cli(env={"NETATMO_TOKEN": TOKEN, "NETATMO_API_URL": cloud.url})
    assert code == 0, output
    assert table_rows(output)["70:ee:50:00:00:07"][4] == "found"
    assert [p for p, _ in cloud.requests] == [
        "/api/gethomedata",
        "/api/homesdata",
        "/api/homestatus?home_id=5c3f0a1b2c3d4e5f60718293",
    ]


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            403,
            {"error": {"code": 13, "message": "Application does not have the good scope rights"}},
            "error: Netatmo refused gethomedata: the token lacks a scope (HTTP 403, error 13: "
            "Application does not have the good scope rights); it needs read_presence "
            "access_presence (read_camera access_camera for Welcome)",
        ),
        (
            401,
            {"error": {"code": 3, "message": "Access token expired"}},
            "error: Netatmo refused the token (HTTP 401, error 3: Access token expired); "
            "get a fresh access token",
        ),
        (
            403,
            {"error": {"code": 2, "message": "Invalid access_token"}},
            "error: Netatmo refused the token (HTTP 403, error 2: Invalid access_token); "
            "get a fresh access token",
        ),
        (
            401,
            b"<html>nope</html>",
            "error: Netatmo refused the token (HTTP 401); get a fresh access token",
        ),
        (
            200,
            b"\x00garbage",
            "error: Netatmo's gethomedata answered with something that is not JSON",
        ),
        (200, {"status": "ok", "body": {"devices": []}}, "error: gethomedata: no body.homes list"),
        (
            400,
            {"error": {"code": 21, "message": "bad\n[OK] injected line\x1b[2J" + "x" * 300}},
            "error: Netatmo's gethomedata failed (HTTP 400, error 21: bad?[OK] injected line?[2J"
            + "x" * 171
            + "...)",
        ),
        (500, b"oops", "error: Netatmo's gethomedata answered HTTP 500 without an error object"),
    ],
)
def test_api_errors_are_one_line(cloud, status, body, message):
    cloud.route("/api/gethomedata", status, body)
    code, output = cli("--token", TOKEN, "--api-url", cloud.url)
    # An answer that is no usable answer is unreadable input (2); a refusal is 1.
    assert code == (2 if status == 200 else 1)
    assert output.strip() == message
    assert TOKEN not in output


def test_api_unreachable():
    # A port nothing listens on (bound then closed).
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, output = cli("--token", TOKEN, "--api-url", f"http://127.0.0.1:{port}")
    assert code == 1
    assert output.strip() == (
        f"error: http://127.0.0.1:{port}: cannot reach Netatmo's API (connection refused)"
    )


# ---------------------------------------------------------------------------
# Hostile answers: every value is checked before anything uses it


def _answer(camera: dict[str, Any] | None = None, **home: Any) -> dict[str, Any]:
    """A gethomedata answer with one home holding CAMERA (changed keys of a good one)."""
    good = {
        "id": "70:ee:50:00:00:09",
        "type": "NOC",
        "name": "Porch",
        "vpn_url": f"https://vpn/restricted/10.255.1.2/{DRIVE_ID}/tok,,",
    }
    return {
        "body": {"homes": [{"name": "Maison", "cameras": [{**good, **(camera or {})}], **home}]}
    }


JINJA = "{{ lookup('pipe', 'touch %s') }}"


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (_answer(cameras=5), "body.homes[0].cameras: must be a list, not 5"),
        (_answer(cameras=[5]), "body.homes[0].cameras[0]: must be an object, not 5"),
        ({"body": {"homes": 5}}, "neither a gethomedata answer"),
        ({"body": {"homes": [5]}}, "body.homes[0]: must be an object"),
        ({"body": 5}, "`body` is not an object"),
        (
            _answer({"id": JINJA}),
            "cameras[0].id: \"{{ lookup('pipe', 'touch %s') }}\" is not a MAC",
        ),
        (
            _answer({"id": "70:ee:50:00:00:09\n"}),
            "cameras[0].id: '70:ee:50:00:00:09\\n' is not a MAC",
        ),
        (_answer({"id": 7}), "cameras[0].id: 7 is not a MAC address"),
        (_answer({"id": None}), "cameras[0].id: None is not a MAC address"),
        (
            _answer({"name": "Porch\x1b[2J"}),
            "cameras[0].name: the name 'Porch\\x1b[2J' holds a control",
        ),
        (
            _answer({"name": "x" * 129}),
            "cameras[0].name: the name is 129 characters long; at most 128",
        ),
        (_answer({"name": ["x"]}), "cameras[0].name: the name must be a string, not ['x']"),
        (
            _answer(name="Maison\u2028"),
            "body.homes[0].name: the name 'Maison\\u2028' holds a control",
        ),
        (_answer({"type": ["NOC"]}), "cameras[0].type: ['NOC'] is not a device type"),
        (_answer({"type": "NOC\n"}), "cameras[0].type: 'NOC\\n' is not a device type"),
        (_answer({"vpn_url": 5}), "cameras[0].vpn_url: must be a URL of at most 2048 characters"),
        (_answer({"vpn_url": "https://v/" + "x" * 2048}), "at most 2048 characters"),
        (
            _answer({"vpn_url": f"https://vpn/10.255.1.2/{JINJA}/t,,"}),
            "cameras[0].vpn_url: its secure id is not 1-128 hexadecimal digits",
        ),
        (
            _answer({"vpn_url": "https://vpn/10.255.1.2/" + "a" * 129 + "/t,,"}),
            "its secure id is not 1-128 hexadecimal digits",
        ),
        (
            {"body": {"homes": [{"cameras": [_answer()["body"]["homes"][0]["cameras"][0]] * 2}]}},
            "camera 70:ee:50:00:00:09 appears twice",
        ),
        (
            {"homesdata": {"body": {"homes": [{"modules": [{"type": ["NOC"]}, 3]}]}}},
            "homesdata: body.homes[0].modules[1]: must be an object, not 3",
        ),
        (
            {"homesdata": {"body": {"homes": [{"id": "../x", "modules": []}]}}},
            "homesdata: body.homes[0].id: '../x' is not a home id",
        ),
        (
            {
                "homesdata": {"body": {"homes": []}},
                "homestatus": {"body": {"home": {"modules": 5}}},
            },
            "homestatus: no body.home.modules list",
        ),
        ({"body": {"homes": [{}] * 65}}, "body.homes: 65 entries; at most 64"),
        ([[[[]]]], "neither a gethomedata answer"),
        (float("inf"), "not JSON (Infinity is not JSON)"),
    ],
)
def test_hostile_answers_are_refused_naming_the_place(tmp_path, answer, says):
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(answer))
    code, output = cli("--from", str(path), "--write", "-i", str(FIXTURES / "inventory.yml"))
    assert code == 2, output
    assert output.startswith(f"error: {path}: ") and len(output.splitlines()) == 1, output
    assert says.replace("%s", "") in output.replace("%s", ""), output
    assert DRIVE_ID not in output


def test_a_template_in_a_cloud_answer_never_runs(tmp_path):
    """Issue 11: a saved answer whose id is `{{ lookup('pipe','touch /tmp/x') }}` ran it."""
    inventory = tmp_path / "inventory.yml"
    shutil.copy(FIXTURES / "inventory.yml", inventory)
    before = inventory.read_bytes()
    marker = tmp_path / "pwned"
    jinja = JINJA % marker
    vault = str(FIXTURES / "vault-password")
    for camera in (
        {"id": jinja},
        {"vpn_url": f"https://vpn/restricted/10.255.1.2/{jinja}/t,,"},
        {"type": jinja},
    ):
        path = tmp_path / "answer.json"
        path.write_text(json.dumps(_answer(camera)))
        code, output = cli(
            "--from", str(path), "--write", "-i", str(inventory), "--vault-password-file", vault
        )
        assert code == 2, output
        assert inventory.read_bytes() == before
    # A name is free text: it becomes a camera name made of [a-z0-9-] only.
    path.write_text(json.dumps(_answer({"name": jinja}, name=jinja)))
    code, output = cli(
        "--from", str(path), "--write", "-i", str(inventory), "--vault-password-file", vault
    )
    assert code == 0, output
    assert "{{" not in inventory.read_text() and "lookup-pipe-touch" in inventory.read_text()
    assert not marker.exists()


def test_an_endless_answer_is_cut_off(cloud, monkeypatch):
    import appliance.discover

    monkeypatch.setattr(appliance.discover, "MAX_ANSWER_BYTES", 4096)
    cloud.route("/api/gethomedata", 200, b'{"body": {"homes": [' + b" " * 10_000 + b"]}}")
    code, output = cli("--token", TOKEN, "--api-url", cloud.url)
    assert code == 2
    assert output == "error: Netatmo's gethomedata answered more than 0 MiB: not an answer\n"
