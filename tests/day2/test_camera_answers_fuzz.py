"""Generated hostile camera answers, at volume, through check and the camera commands.

Every case is a real HTTP exchange with a hostile camera on loopback (status, headers, body
and the way it is delivered all generated). Whatever it answers: no traceback and no
catch-all "unexpected error", one printable line per failure, exit 1 (never 2) from the
commands, no secure id in any output, and no request outside the camera's prefix or to
another host. Derandomized in CI (tests/property_cases.py); `make fuzz` runs them longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.camera_api import CameraClient, CameraTarget
from appliance.camera_bounds import OutOfScope, Scope
from appliance.check import run_check
from appliance.cli.camera_cmds import apply_floodlight, describe_floodlight, talk
from appliance.inventory import load_inventory
from tests.certs import make_self_signed
from tests.day2.hostile_camera import (
    JPEG,
    TS,
    Behaviour,
    HostileCamera,
    Peer,
    Seen,
    head,
    hostile_camera,
)
from tests.day2.test_check_hostile import (
    ELSEWHERE_ADDRESS,
    PASSWORD,
    SERVER_NAME,
    direct_inventory,
    proxy_inventory,
)
from tests.property_cases import examples, ran

pytestmark = pytest.mark.property

TIMEOUT = 1.0
# The healthy control: its answers come at once, so a long timeout costs nothing and a loaded
# machine cannot make it fail.
HEALTHY_TIMEOUT = 5.0
# The hostile Pi of this module (test_check_hostile.py's is .1 and may be torn down later).
PI_ADDRESS = "127.203.160.3"
MAX_LINE = 400

# ---------------------------------------------------------------------------
# Strategies: what a hostile camera can say


def elsewhere_url() -> str:
    return f"http://{ELSEWHERE_ADDRESS}:{_ELSEWHERE_PORT}/x"


_ELSEWHERE_PORT = 9  # replaced by the module fixture with the real port

URI_PARTS = st.sampled_from(
    [
        "..",
        ".",
        "%2e%2e",
        "%2E.",
        "%2f",
        "%5c",
        "\\",
        "",
        "files",
        "poor",
        "index.m3u8",
        "live0000000001.ts",
        "a b",
        "\x00",
        "\u2028",
        "é",
        "?x=..%2f",
        "#frag",
        ";p",
        "@",
        ":80",
        "cameras",
        "other",
    ]
)
URI_HEADS = st.sampled_from(
    [
        "",
        "/",
        "//",
        "//127.0.0.1/",
        "http://127.0.0.1/",
        "https://127.0.0.1/",
        "http://[",
        "HTTP://127.0.0.1:1/",
        "//user:pw@127.0.0.1/",
        "javascript:",
        "file:///",
        "http:",
    ]
)
uris = st.one_of(
    st.builds(lambda h, parts: h + "/".join(parts), URI_HEADS, st.lists(URI_PARTS, max_size=6)),
    st.text(max_size=40),
    st.just("@ELSEWHERE@"),
)
playlist_lines = st.one_of(
    st.sampled_from(
        ["#EXTM3U", "#EXT-X-STREAM-INF:BANDWIDTH=1", "#EXTINF:2,", "#EXT-X-TARGETDURATION:2", ""]
    ),
    uris,
)
playlists = st.builds(
    lambda lines, head_ok: ("#EXTM3U\n" if head_ok else "") + "\n".join(lines),
    st.lists(playlist_lines, max_size=8),
    st.booleans(),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_keys = st.one_of(
    st.sampled_from(["local_url", "mode", "intensity", "night", "error", "code", "message"]),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_keys, inner, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda u: json.dumps({"local_url": u}).encode(), uris),
    playlists.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda b: JPEG[:4] + b),
    st.binary(max_size=300).map(lambda b: TS + b),
    st.sampled_from([b"<html>x</html>", b"NaN", b"[" * 5000, b"\xef\xbb\xbf#EXTM3U\nx.ts"]),
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            None,
            "",
            "application/json",
            "application/json; charset=utf-8",
            "application/vnd.apple.mpegurl",
            "APPLICATION/X-MPEGURL",
            "audio/mpegurl",
            "video/mp2t",
            "image/jpeg",
            "text/html",
            "text/plain",
            "application/octet-stream",
        ]
    ),
    st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=30),
)
STATUSES = st.one_of(
    st.sampled_from([200, 200, 200, 204, 206, 301, 302, 304, 307, 400, 401, 403, 404, 409, 502]),
    st.integers(100, 599),
)
DELIVERIES = st.sampled_from(
    [
        "exact",
        "exact",
        "exact",
        "no-length",
        "chunked",
        "short-length",
        "long-length",
        "huge-length",
        "gzip",
        "endless",
        "extra-headers",
    ]
)
answers = st.tuples(STATUSES, CONTENT_TYPES, bodies, DELIVERIES)

# Near misses: an answer right in all but one or two ways reaches the deep code paths
# (identity checks, playlist following, merging) that a random answer rarely gets past.
# @LOCAL@, @HOST@ and @SID@ become the camera's own local_url, address and secure id.
GOOD_URIS = {
    "live/index.m3u8": "files/poor/index.m3u8",
    "live/files/poor/index.m3u8": "live0000000001.ts",
}
LOCAL_URLS = st.one_of(
    st.sampled_from(
        [
            "@LOCAL@",
            "@LOCAL@/",
            "http://@HOST@/@SID@/x",
            "http://[",
            "http://@HOST@:99999/@SID@",
            "http://@HOST@\x07/@SID@",
            "/cameras/other",
            "http://10.0.0.1/@SID@",
            "http://@HOST@/",
        ]
    ),
    uris,
)


def near_playlist(route: str) -> st.SearchStrategy[bytes]:
    tag = "#EXT-X-STREAM-INF:BANDWIDTH=1" if route == "live/index.m3u8" else "#EXTINF:2,"
    line = st.one_of(st.just(tag), st.just(GOOD_URIS[route]), playlist_lines, uris)
    return st.lists(line, min_size=1, max_size=6).map(
        lambda lines: ("#EXTM3U\n" + "\n".join(lines)).encode("utf-8", "surrogatepass")
    )


def json_body(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return strategy.map(lambda v: json.dumps(v).encode())


FLOODLIGHT_CONFIGS = st.fixed_dictionaries(
    {},
    optional={
        "mode": st.one_of(st.sampled_from(["on", "off", "auto"]), json_values),
        "intensity": st.one_of(st.integers(0, 100), json_values),
        "night": st.one_of(st.dictionaries(st.text(max_size=8), st.booleans()), json_values),
        "extra": json_values,
    },
)
CAMERA_ERRORS = st.fixed_dictionaries(
    {
        "error": st.one_of(
            st.fixed_dictionaries({"code": json_scalars, "message": json_scalars}), json_values
        )
    }
)
NEAR_BODIES: dict[str, st.SearchStrategy[bytes]] = {
    "command/ping": json_body(
        st.builds(
            lambda u, extra: {**extra, "local_url": u},
            LOCAL_URLS,
            st.dictionaries(json_keys, json_values, max_size=2),
        )
    ),
    "live/snapshot_720.jpg": st.binary(max_size=200).map(lambda b: JPEG[:4] + b),
    "live/index.m3u8": near_playlist("live/index.m3u8"),
    "live/files/poor/index.m3u8": near_playlist("live/files/poor/index.m3u8"),
    "live/files/poor/live0000000001.ts": st.binary(max_size=200).map(lambda b: TS + b),
    "command/floodlight_get_config": json_body(FLOODLIGHT_CONFIGS),
    "command/floodlight_set_config": json_body(st.one_of(st.just({"status": "ok"}), CAMERA_ERRORS)),
    "command/changestatus": json_body(st.one_of(st.just({"status": "ok"}), CAMERA_ERRORS)),
}
GOOD_TYPES = {
    "command/ping": "application/json",
    "live/snapshot_720.jpg": "image/jpeg",
    "live/index.m3u8": "application/vnd.apple.mpegurl",
    "live/files/poor/index.m3u8": "application/x-mpegurl",
    "live/files/poor/live0000000001.ts": "video/mp2t",
    "command/floodlight_get_config": "application/json",
    "command/floodlight_set_config": "application/json",
    "command/changestatus": "application/json",
}


def mostly(good: Any, anything: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """GOOD two times in three, else anything."""
    good = good if isinstance(good, st.SearchStrategy) else st.just(good)
    return st.one_of(good, good, anything)


def route_answer(route: str) -> st.SearchStrategy[tuple[int, str | None, bytes, str]]:
    """A generated answer for ROUTE: a near miss (mostly right) or anything at all."""
    status = (
        mostly(200, STATUSES)
        if route != "command/changestatus"
        else mostly(st.sampled_from([200, 409]), STATUSES)
    )
    near = st.tuples(
        status,
        mostly(GOOD_TYPES[route], CONTENT_TYPES),
        mostly(NEAR_BODIES[route], bodies),
        mostly("exact", DELIVERIES),
    )
    return st.one_of(near, near, answers)


def hostile_routes(routes: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """One to three of ROUTES, each with its generated answer."""
    return st.lists(st.sampled_from(routes), min_size=1, max_size=3, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({r: route_answer(r) for r in chosen})
    )


def behaviour(spec: tuple[int, str | None, bytes, str], camera: HostileCamera) -> Behaviour:
    """The bytes a generated answer puts on the socket."""
    status, ctype, body, delivery = spec
    local = f"/cameras/{camera.name}" if camera.pi else f"http://{camera.host}/{camera.secure_id}"
    for mark, value in (
        ("@ELSEWHERE@", elsewhere_url()),
        ("@LOCAL@", local),
        ("@HOST@", camera.host),
        ("@SID@", camera.secure_id),
    ):
        body = body.replace(mark.encode(), value.encode())

    def behave(seen: Seen, peer: Peer) -> None:
        fields: list[tuple[str, str]] = [("Connection", "close")]
        if ctype is not None:
            fields.append(("Content-Type", ctype))
        data = body
        if delivery == "gzip":
            data = gzip.compress(body)
            fields.append(("Content-Encoding", "gzip"))
        if delivery == "endless":
            peer.send(head(status, fields))
            block = (body or b"x") * max(1, 8192 // max(1, len(body)))
            while True:
                peer.send(block)
        if delivery == "chunked":
            fields.append(("Transfer-Encoding", "chunked"))
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (data[:7], data[7:]) if c)
            peer.send(head(status, fields) + chunks + b"0\r\n\r\n")
            return
        length = {
            "short-length": max(0, len(data) - 3),
            "long-length": len(data) + 100,
            "huge-length": 10**12,
        }.get(delivery, len(data))
        if delivery != "no-length":
            fields.append(("Content-Length", str(length)))
        if delivery == "extra-headers":
            fields += [("Location", elsewhere_url()), ("Set-Cookie", "a=b"), ("X-A", "\x7f")]
        peer.send(head(status, fields) + data)

    return behave


ROUTES = [
    "command/ping",
    "live/snapshot_720.jpg",
    "live/index.m3u8",
    "live/files/poor/index.m3u8",
    "live/files/poor/live0000000001.ts",
]

# ---------------------------------------------------------------------------
# Peers, shared by every case of this module


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[HostileCamera]:
    global _ELSEWHERE_PORT
    with hostile_camera(host=ELSEWHERE_ADDRESS) as server:
        _ELSEWHERE_PORT = server.port
        yield server


@pytest.fixture(scope="module")
def camera(elsewhere: HostileCamera) -> Iterator[HostileCamera]:
    with hostile_camera(host="127.0.0.1") as server:
        yield server


@pytest.fixture(scope="module")
def loaded(camera: HostileCamera, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_inventory(direct_inventory(tmp_path_factory.mktemp("fuzz"), camera))


@pytest.fixture(scope="module")
def pi(elsewhere: HostileCamera, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A hostile Pi (TLS on 443, the camera under /cameras/evil/) and its inventory."""
    directory = tmp_path_factory.mktemp("fuzz-pi")
    cert = make_self_signed(
        directory / "server.key",
        directory / "server.crt",
        SERVER_NAME,
        f"DNS:{SERVER_NAME},IP:{PI_ADDRESS}",
        days=2,
    )
    with hostile_camera(
        host=PI_ADDRESS, port=443, pi=True, tls=(cert, directory / "server.key")
    ) as server:
        yield server, load_inventory(proxy_inventory(directory, server, cert))


def assert_one_printable_line(text: str, secure_id: str) -> None:
    assert isinstance(text, str)
    assert "\n" not in text and "\r" not in text, text
    assert text.isprintable(), text
    assert len(text) <= MAX_LINE, text
    assert secure_id not in text
    assert "unexpected error" not in text, text


# ---------------------------------------------------------------------------
# The scope: pure, so the most cases


PROXY_BASE = "https://pi.lan/cameras/cam-1"
DIRECT_BASE = "http://10.42.0.10/" + "ab" * 16


@settings(max_examples=examples(2400))
@given(
    base=st.sampled_from([PROXY_BASE, DIRECT_BASE]),
    where=st.sampled_from(["live/index.m3u8", "live/files/poor/index.m3u8"]),
    reference=uris,
)
def test_a_playlist_reference_never_leaves_the_scope(base: str, where: str, reference: str):
    ran("camera answers: playlist URIs")
    scope = Scope.of(base)
    try:
        url = scope.resolve(httpx.URL(f"{base}/{where}"), reference)
    except OutOfScope as err:
        assert_one_printable_line(str(err), "ab" * 16)
        return
    # An independent look at what would be requested.
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(str(url))
    expected = urlsplit(base)
    assert (parts.scheme, parts.hostname, parts.port) == (
        expected.scheme,
        expected.hostname,
        expected.port,
    )
    assert parts.path.startswith(expected.path + "/")
    segments = unquote(parts.path[len(expected.path) + 1 :]).split("/")
    assert all(s not in ("", ".", "..") and "\\" not in s and "%" not in s for s in segments)


# ---------------------------------------------------------------------------
# check


@settings(max_examples=examples(900))
@given(proxy=st.booleans(), hostile=hostile_routes(ROUTES))
def test_check_survives_any_answer(
    proxy: bool, hostile: dict[str, Any], camera, pi, elsewhere, loaded
):
    ran("camera answers: check")
    if proxy:
        camera, loaded = pi
    camera.healthy()
    for route, spec in hostile.items():
        camera.routes[route] = behaviour(spec, camera)
    camera.requests.clear()
    before = elsewhere.connections
    report = run_check(loaded, direct=True, timeout=TIMEOUT)
    (result,) = report.cameras
    for step in (result.ping, result.snapshot, result.stream):
        assert_one_printable_line(step.detail, camera.secure_id)
    assert camera.secure_id not in json.dumps(report.to_dict())
    assert camera.outside() == []
    assert elsewhere.connections == before
    if proxy:
        # The login went with every request, and every request was inside the scope.
        assert all(s.headers.get("authorization") for s in camera.requests)
        assert PASSWORD not in json.dumps(report.to_dict())
    ping = hostile.get("command/ping")
    if ping is not None and ping[0] != 200:
        assert result.ping.ok is False
    snapshot = hostile.get("live/snapshot_720.jpg")
    if snapshot is not None and (snapshot[1] or "").split(";")[0].strip().lower() != "image/jpeg":
        assert result.snapshot.ok is not True


# ---------------------------------------------------------------------------
# camera floodlight / monitoring / snapshot: talk() is the edge that prints and exits


COMMAND_ROUTES = [
    "command/floodlight_get_config",
    "command/floodlight_set_config",
    "command/changestatus",
    "live/snapshot_720.jpg",
]


def command_action(kind: str):  # type: ignore[no-untyped-def]
    if kind == "floodlight":
        return lambda c: apply_floodlight(c, "on", 40, {"person": False})
    if kind == "monitoring":
        return lambda c: c.set_monitoring(False)
    return lambda c: c.snapshot()


@settings(max_examples=examples(800))
@given(
    kind=st.sampled_from(["floodlight", "monitoring", "snapshot"]),
    hostile=hostile_routes(COMMAND_ROUTES),
)
def test_camera_commands_survive_any_answer(kind, hostile, camera, elsewhere, loaded):
    ran("camera answers: camera commands")
    camera.healthy()
    for route, spec in hostile.items():
        camera.routes[route] = behaviour(spec, camera)
    camera.requests.clear()
    before = elsewhere.connections
    appliance = loaded.appliances[0]
    (cam,) = appliance.vars["cameras"]
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err):
        try:
            value = talk(loaded, appliance, cam, True, TIMEOUT, command_action(kind))
        except SystemExit as exit:
            code = exit.code  # type: ignore[assignment]
    if code == 0:
        assert err.getvalue() == ""
        if kind == "floodlight":
            assert_one_printable_line(describe_floodlight(value), camera.secure_id)
        elif kind == "snapshot":
            assert value.startswith(b"\xff\xd8\xff")
    else:
        assert code == 1, err.getvalue()
        line = err.getvalue()
        assert line.endswith("\n") and line.count("\n") == 1, line
        assert line.startswith(f"error: {camera.name}: ")
        assert_one_printable_line(line[:-1], camera.secure_id)
    assert camera.outside() == []
    assert elsewhere.connections == before


def test_a_healthy_peer_passes_the_same_harness(camera, loaded):
    # The harness itself can tell good from bad: the healthy camera passes both.
    camera.healthy()
    assert run_check(loaded, direct=True, timeout=HEALTHY_TIMEOUT).ok
    target = CameraTarget(
        camera.name, "pi", f"{camera.origin}/{camera.secure_id}", camera.secure_id, camera.host
    )

    async def call() -> bytes:
        async with httpx.AsyncClient() as client:
            return await CameraClient(target, client, timeout=HEALTHY_TIMEOUT).snapshot()

    assert asyncio.run(call()) == JPEG


@settings(max_examples=examples(400))
@given(config=st.one_of(FLOODLIGHT_CONFIGS, st.dictionaries(json_keys, json_values, max_size=6)))
def test_a_floodlight_configuration_is_shown_as_one_line(config: dict[str, Any]):
    # What `camera floodlight` prints on success: every field came from the camera.
    ran("camera answers: floodlight shown")
    assert_one_printable_line(describe_floodlight(config), "ab" * 16)
    assert describe_floodlight(config).isascii()
