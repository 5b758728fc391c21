"""An httpx client for one camera's local API, spoken directly or through the Pi's HTTPS proxy."""

from __future__ import annotations

import asyncio
import errno
import json
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from appliance.camera_bounds import (
    JSON_TYPES,
    MAX_JSON_BYTES,
    MAX_PLAYLIST_BYTES,
    MAX_SNAPSHOT_BYTES,
    PLAYLIST_TYPES,
    SEGMENT_TYPES,
    SNAPSHOT_TYPES,
    BadJson,
    BadPlaylist,
    OutOfScope,
    Scope,
    one_line,
    parse_json,
    playlist_lines,
    shown,
)

JPEG_MAGIC = b"\xff\xd8\xff"
TS_SYNC_BYTE = 0x47
# A segment is 188-byte packets; a few of them are enough to see the sync byte.
SEGMENT_PROBE_BYTES = 188 * 4
# The floodlight object goes back to the camera in a query string: keep it to what fits.
MAX_FLOODLIGHT_CONFIG_CHARS = 2048
# A variant's name as shown in check's table (the path segment before index.m3u8).
_VARIANT_NAME = re.compile(r"[A-Za-z0-9._-]{1,32}")


class CameraError(Exception):
    """A camera request failed; the message is one line with the secure id scrubbed."""

    def __init__(self, message: str, *, unreachable: bool = False, status: int | None = None):
        # One printable line, whatever a camera put into the text it came from.
        super().__init__(one_line(message))
        # True when nothing answered (refused, timeout, TLS): further requests would only wait.
        self.unreachable = unreachable
        self.status = status


@dataclass(frozen=True)
class CameraTarget:
    """Where and how to reach one camera.

    `base_url` ends where the camera's own paths start: `http://IP[:PORT]/<secure-id>` when
    direct, `https://<pi>/cameras/<name>` through the proxy. Both take `/command/...`
    and `/live/...` after it. Nothing outside it is ever requested (see camera_bounds.Scope).
    """

    name: str
    appliance: str
    base_url: str
    secure_id: str
    address: str  # the camera's IP as the inventory has it
    via_proxy: bool = False
    auth: tuple[str, str] | None = None
    verify: ssl.SSLContext | bool = True
    # Server name to verify and send as Host when it differs from the URL's host
    # (a user-supplied certificate for web.server_name while we connect to ansible_host).
    server_name: str | None = None
    # Strings never to print (secure id, web password).
    secrets: tuple[str, ...] = field(default=())

    def scrub(self, text: str) -> str:
        """Return text with the secure id and other secrets replaced by placeholders."""
        for secret in (self.secure_id, *self.secrets):
            if secret:
                text = text.replace(
                    secret, "<secret>" if secret != self.secure_id else "<secure-id>"
                )
        return text


def _looks_like_html(response: httpx.Response, body: bytes) -> bool:
    ctype = response.headers.get("content-type", "").lower()
    head = body[:512].lstrip().lower()
    return "html" in ctype or head.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<"))


def _content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def _size(count: int) -> str:
    return f"{count // 1024} kB" if count < 1024 * 1024 else f"{count // (1024 * 1024)} MB"


class CameraClient:
    """Requests to one camera over a shared httpx.AsyncClient, each bounded by `timeout` seconds."""

    def __init__(self, target: CameraTarget, client: httpx.AsyncClient, timeout: float = 5.0):
        self.target = target
        self.client = client
        self.timeout = timeout
        try:
            self.scope: Scope | None = Scope.of(target.base_url)
        except (httpx.InvalidURL, ValueError, UnicodeError):
            self.scope = None  # said by the first request, as one camera's failure

    def _url(self, path: str) -> str:
        return self.target.base_url.rstrip("/") + "/" + path.lstrip("/")

    async def _request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: dict[str, str] | None = None,
        limit: int,
        truncate: bool = False,
    ) -> tuple[httpx.Response, bytes]:
        """Send one request inside the camera's scope and read at most LIMIT body bytes.

        A body longer than LIMIT is an error, unless TRUNCATE (a probe of a segment's first
        bytes): then reading stops at LIMIT. The whole exchange has one deadline.
        """
        if self.scope is None:
            raise CameraError(
                "the inventory's address for this camera is not usable", unreachable=True
            )
        scope = self.scope
        headers = {"Accept-Encoding": "identity"}
        extensions: dict[str, Any] = {}
        if self.target.server_name:
            headers["Host"] = self.target.server_name
            extensions["sni_hostname"] = self.target.server_name
        try:
            request = self.client.build_request(
                method, url, params=params, headers=headers, extensions=extensions
            )
        except (httpx.InvalidURL, ValueError, UnicodeError):
            raise CameraError(
                "the inventory's address for this camera is not usable", unreachable=True
            ) from None
        # For messages: the camera's own path ("command/ping"), never the secure id.
        what = self._what(scope, request.url)
        try:
            # The one gate every request passes: nothing leaves the camera's scope, so the
            # web login (and the secure id, in direct mode) go nowhere else.
            scope.check(request.url)
        except OutOfScope as err:
            raise CameraError(f"{what}: refused to request {err}") from None
        try:
            # httpx's timeouts are per socket operation; a camera that drips bytes would
            # never trip them, so the whole exchange gets one deadline as well.
            async with asyncio.timeout(self.timeout):
                response = await self.client.send(
                    request,
                    auth=self.target.auth or httpx.USE_CLIENT_DEFAULT,
                    stream=True,
                    # A redirect is never followed: it could lead out of the scope, and
                    # httpx would carry the login along to the same origin's other paths.
                    follow_redirects=False,
                )
                try:
                    body = await self._read_body(response, what, limit, truncate)
                finally:
                    await response.aclose()
        except TimeoutError as err:
            raise CameraError(f"no answer within {self.timeout:g} s", unreachable=True) from err
        except httpx.TimeoutException as err:
            raise CameraError(f"no answer within {self.timeout:g} s", unreachable=True) from err
        except httpx.ConnectError as err:
            raise CameraError(self._describe_connect_error(err), unreachable=True) from err
        except httpx.RemoteProtocolError as err:
            # The connection closed without an answer, or what came back was not HTTP.
            raise CameraError(
                f"{what}: no HTTP answer (connection closed or not HTTP)", unreachable=True
            ) from err
        except httpx.HTTPError as err:
            detail = self.target.scrub(str(err) or type(err).__name__)
            raise CameraError(f"{what}: {detail}", unreachable=True) from err
        except ssl.SSLError as err:
            raise CameraError(
                f"TLS failure: {self.target.scrub(str(err))}", unreachable=True
            ) from err
        except OSError as err:
            raise CameraError(
                f"network error: {self.target.scrub(str(err))}", unreachable=True
            ) from err
        if response.status_code == 401 and self.target.via_proxy:
            # Every other request would be refused the same way.
            raise CameraError(
                "the Pi refused the web login (HTTP 401): check web.users in the inventory",
                unreachable=True,
                status=401,
            )
        if 300 <= response.status_code < 400:
            raise CameraError(
                f"{what}: redirected (HTTP {response.status_code}); redirects are not followed",
                status=response.status_code,
            )
        return response, body

    async def _read_body(
        self, response: httpx.Response, what: str, limit: int, truncate: bool
    ) -> bytes:
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            # We asked for identity; a compressed body could be a bomb, and is not read.
            raise CameraError(f"{what}: compressed answer refused (we asked for none)")
        declared = response.headers.get("content-length", "")
        # isascii: str.isdigit() also says yes to digits int() does not read ('²').
        if not truncate and declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise CameraError(f"{what}: answer of {_size(int(declared))}, more than {_size(limit)}")
        body = bytearray()
        # Raw bytes: httpx decodes nothing, and one chunk is at most what the socket gave.
        async for chunk in response.aiter_raw():
            body.extend(chunk)
            if len(body) > limit:
                if truncate:
                    del body[limit:]
                    break
                raise CameraError(f"{what}: answer longer than {_size(limit)}")
        return bytes(body)

    def _what(self, scope: Scope, url: httpx.URL) -> str:
        raw = url.raw_path.decode("ascii", "replace").split("?", 1)[0]
        prefix = scope.prefix
        path = raw[len(prefix) :] if raw.startswith(prefix) else "a path outside the camera"
        return shown(self.target.scrub(path))

    def _describe_connect_error(self, err: httpx.ConnectError) -> str:
        # httpx wraps the socket error ("All connection attempts failed"); the cause says why.
        causes: list[BaseException] = []
        cause: BaseException | None = err
        while cause is not None and len(causes) < 8:
            causes.append(cause)
            cause = cause.__cause__ or cause.__context__
        for cause in causes:
            if isinstance(cause, ssl.SSLCertVerificationError):
                if "mismatch" in (cause.verify_message or "").lower():
                    name = self.target.server_name or urlsplit(self.target.base_url).hostname
                    return f"TLS failure: the Pi's certificate does not name {name}"
                return "TLS failure: the Pi's certificate is not the pinned/trusted one"
            if isinstance(cause, ssl.SSLError):
                return f"TLS failure: {self.target.scrub(cause.reason or str(cause))}"
            if isinstance(cause, ConnectionRefusedError):
                return "connection refused"
            if isinstance(cause, OSError) and cause.errno in (
                errno.EHOSTUNREACH,
                errno.ENETUNREACH,
            ):
                return "no route to the address"
        text = self.target.scrub(str(err))
        low = text.lower()
        if "certificate" in low or "ssl" in low:
            return f"TLS failure: {text}"
        if "refused" in low:
            return "connection refused"
        return text or "connection failed"

    def _fail(self, what: str, message: str, status: int | None = None) -> CameraError:
        return CameraError(self.target.scrub(f"{what}: {message}"), status=status)

    def _type_error(self, what: str, response: httpx.Response, expected: str) -> CameraError:
        ctype = shown(_content_type(response), 40) or "missing"
        return self._fail(what, f"content type {ctype}, not {expected}", response.status_code)

    async def command(
        self, name: str, params: dict[str, str] | None = None, *, method: str = "GET"
    ) -> tuple[int, Any]:
        """Call /command/NAME and return (status, parsed JSON); HTML or garbage raise.

        A non-2xx answer that is not JSON comes back as (status, None): its status says enough.
        """
        response, body = await self._request(
            method, self._url(f"command/{name}"), params=params, limit=MAX_JSON_BYTES
        )
        status = response.status_code
        if _looks_like_html(response, body):
            raise self._fail(name, f"HTML page instead of JSON (HTTP {status})", status)
        is_json = _content_type(response) in JSON_TYPES
        if not 200 <= status < 300 and not is_json:
            return status, None
        try:
            data = parse_json(body)
        except BadJson as err:
            reason = "answer is not JSON" if str(err) == "not JSON" else f"answer: {err}"
            raise self._fail(name, f"{reason} (HTTP {status})", status) from None
        if not is_json:
            raise self._type_error(name, response, "application/json")
        return status, data

    async def ping(self) -> float:
        """Ping the camera; return the round trip in ms. Checks the answer names this camera."""
        started = time.perf_counter()
        status, data = await self.command("ping")
        elapsed_ms = (time.perf_counter() - started) * 1000
        if status in (502, 504) and self.target.via_proxy:
            # nginx's own answer: the camera is down behind the Pi; the media would wait too.
            raise CameraError(
                f"ping: the Pi could not reach the camera (HTTP {status})",
                unreachable=True,
                status=status,
            )
        if status != 200:
            raise self._fail("ping", _error_text(status, data), status)
        if not isinstance(data, dict) or not isinstance(data.get("local_url"), str):
            raise self._fail("ping", "answer has no local_url")
        self._check_local_url(data["local_url"])
        return elapsed_ms

    def _check_local_url(self, local_url: str) -> None:
        # Never print local_url: it holds the secure id.
        try:
            parts = urlsplit(local_url)
            host = parts.hostname or ""
        except ValueError:
            raise self._fail("ping", "local_url is not a URL") from None
        segments = [s for s in parts.path.split("/") if s]
        if self.target.via_proxy and not host:
            # The web role rewrites local_url to the camera's proxy path (hiding the secure id).
            if parts.path.rstrip("/") != f"/cameras/{self.target.name}":
                raise self._fail("ping", "the answer names another camera of the proxy")
            return
        if host != self.target.address:
            raise self._fail(
                "ping",
                f"the camera answering says its address is {shown(host, 40) or '?'}, "
                f"the inventory says {self.target.address}",
            )
        if not segments or segments[0] != self.target.secure_id:
            raise self._fail("ping", "the camera answering has a different secure id")

    async def snapshot(self) -> bytes:
        """Fetch the live snapshot and return the JPEG bytes."""
        response, body = await self._request(
            "GET", self._url("live/snapshot_720.jpg"), limit=MAX_SNAPSHOT_BYTES
        )
        if response.status_code != 200:
            raise self._fail("snapshot", f"HTTP {response.status_code}", response.status_code)
        if _content_type(response) not in SNAPSHOT_TYPES:
            raise self._type_error("snapshot", response, "image/jpeg")
        if not body.startswith(JPEG_MAGIC):
            raise self._fail("snapshot", "body is not a JPEG image")
        return body

    async def _playlist(self, url: httpx.URL, what: str) -> list[str]:
        response, body = await self._request("GET", url, limit=MAX_PLAYLIST_BYTES)
        if response.status_code != 200:
            raise self._fail(what, f"HTTP {response.status_code}", response.status_code)
        if _looks_like_html(response, body):
            raise self._fail(what, "HTML page instead of a playlist")
        if not body.removeprefix(b"\xef\xbb\xbf").startswith(b"#EXTM3U"):
            raise self._fail(what, "not an HLS playlist")
        if _content_type(response) not in PLAYLIST_TYPES:
            raise self._type_error(what, response, "an HLS playlist type")
        try:
            return playlist_lines(body)
        except BadPlaylist as err:
            raise self._fail(what, str(err)) from None

    def _follow(self, base: httpx.URL, reference: str, what: str) -> httpx.URL:
        """The URL a playlist names; an error when it leads out of the camera's scope."""
        try:
            if self.scope is None:  # not reached: no request was made without a scope
                raise OutOfScope("a URL without a usable camera address")
            return self.scope.resolve(base, reference)
        except OutOfScope as err:
            raise self._fail(what, f"names {err}; not followed") from None

    async def stream(self) -> str:
        """Follow the live playlist to one segment; return the variant's path tail (e.g. 'poor')."""
        master_url = httpx.URL(self._url("live/index.m3u8"))
        lines = await self._playlist(master_url, "live playlist")
        variant_url = master_url
        variant_name = "single"
        if any(line.startswith("#EXT-X-STREAM-INF") for line in lines):
            uris = [line for line in lines if not line.startswith("#")]
            if not uris:
                raise self._fail("live playlist", "master playlist lists no variant")
            variant_url = self._follow(master_url, uris[0], "live playlist")
            tail = [s for s in variant_url.path.split("/") if s]
            name = tail[-2] if len(tail) >= 2 else ""
            variant_name = name if _VARIANT_NAME.fullmatch(name) else "variant"
            lines = await self._playlist(variant_url, "variant playlist")
            if any(line.startswith("#EXT-X-STREAM-INF") for line in lines):
                # One level of indirection is what HLS has; more would be a loop to follow.
                raise self._fail("variant playlist", "is another master playlist")
        segments = [line for line in lines if not line.startswith("#")]
        if not segments:
            raise self._fail("variant playlist", "lists no segment")
        # The newest segment is the one least likely to have slid out of the window.
        segment_url = self._follow(variant_url, segments[-1], "variant playlist")
        response, body = await self._request(
            "GET", segment_url, limit=SEGMENT_PROBE_BYTES, truncate=True
        )
        if response.status_code != 200:
            raise self._fail("segment", f"HTTP {response.status_code}", response.status_code)
        if not body or body[0] != TS_SYNC_BYTE:
            raise self._fail("segment", "not an MPEG-TS segment")
        if _content_type(response) not in SEGMENT_TYPES:
            raise self._type_error("segment", response, "video/mp2t")
        return self.target.scrub(variant_name)

    async def floodlight_config(self) -> dict[str, Any]:
        """Read the floodlight configuration object."""
        status, data = await self.command("floodlight_get_config")
        if status != 200 or not isinstance(data, dict):
            raise self._fail("floodlight_get_config", _error_text(status, data), status)
        return data

    async def set_floodlight_config(self, config: dict[str, Any]) -> None:
        """Write the whole floodlight configuration object (the camera replaces it)."""
        payload = json.dumps(config, separators=(",", ":"))
        if len(payload) > MAX_FLOODLIGHT_CONFIG_CHARS:
            raise self._fail(
                "floodlight_set_config",
                f"the camera's configuration is longer than {MAX_FLOODLIGHT_CONFIG_CHARS} "
                "characters; not written back",
            )
        status, data = await self.command(
            "floodlight_set_config", {"config": payload}, method="POST"
        )
        if status != 200 or (isinstance(data, dict) and "error" in data):
            raise self._fail("floodlight_set_config", _error_text(status, data), status)

    async def set_monitoring(self, on: bool) -> bool:
        """Switch monitoring; return False when the camera was already in that state."""
        status, data = await self.command(
            "changestatus", {"status": "on" if on else "off"}, method="POST"
        )
        if status == 200 and not (isinstance(data, dict) and "error" in data):
            return True
        # The camera says 409 code 7; through the proxy nginx swaps in its own 409 page.
        if status == 409 and (_error_code(data) == 7 or self.target.via_proxy):
            return False
        raise self._fail("changestatus", _error_text(status, data), status)


def _error_code(data: Any) -> Any:
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return data["error"].get("code")
    return None


def _error_text(status: int, data: Any) -> str:
    """What a camera's (or the Pi's) error answer says, its own words cut and made printable."""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        return (
            f"HTTP {status}, camera error {shown(err.get('code'), 12)}: {shown(err.get('message'))}"
        )
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        # The Pi's proxy answers errors as {"error": "not found", "status": 404}.
        return f"HTTP {status} ({shown(data['error'])})"
    if status != 200:
        return f"HTTP {status}"
    return "unexpected answer"
