"""What the controller accepts from a camera: where it may send requests, how much it reads, what it prints.

A camera (or anything answering in its place) is hostile. Its playlists name the next URL to
fetch, so they could send our web login anywhere; its bodies could be endless; its strings
could carry terminal escapes or newlines into our one-line errors. Every camera answer
passes through here before the rest of the code looks at it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import httpx

# Size bounds. A real camera's playlists are a few hundred bytes (a master of four variants,
# a sliding window of three segments), its JSON answers under 1 kB, its snapshot about 240 kB.
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16
MAX_PLAYLIST_BYTES = 64 * 1024
MAX_PLAYLIST_LINES = 1000
MAX_URI_CHARS = 1024
MAX_SNAPSHOT_BYTES = 8 * 1024 * 1024
# Camera-chosen text in a message (an error message, a floodlight mode) is cut to this.
MAX_SHOWN_CHARS = 80

# Content types per kind of answer: the same families the Pi's proxy lets through.
PLAYLIST_TYPES = frozenset(
    {"application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl", "audio/x-mpegurl"}
)
SEGMENT_TYPES = frozenset({"video/mp2t"})
SNAPSHOT_TYPES = frozenset({"image/jpeg"})
JSON_TYPES = frozenset({"application/json"})

_DEFAULT_PORTS = {"http": 80, "https": 443}
# What a decoded path segment may hold: RFC 3986 unreserved and sub-delims, ':' and '@'.
# No '%' (a second decoding somewhere downstream must find nothing), no '/' or '\' (an
# encoded slash would let nginx or the camera see other segments than we checked).
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


class OutOfScope(ValueError):
    """A URL the controller will not request: the message says why, never the URL itself."""


@dataclass(frozen=True)
class Scope:
    """The one origin and path prefix a camera's requests may go to.

    Through the Pi: `https://<pi>/cameras/<name>/`; direct: `http://<camera>/<secure-id>/`.
    The web login is only ever sent inside this scope.
    """

    scheme: str
    host: str
    port: int
    prefix: str  # raw (percent-encoded) path, ending in "/"

    @classmethod
    def of(cls, base_url: str) -> Scope:
        url = httpx.URL(base_url)
        port = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
        prefix = url.raw_path.decode("ascii").split("?", 1)[0].rstrip("/") + "/"
        return cls(url.scheme, url.host, port, prefix)

    def check(self, url: httpx.URL) -> None:
        """Raise OutOfScope unless URL is inside this scope."""
        if url.scheme != self.scheme:
            raise OutOfScope(f"a URL with another scheme ({_shown(url.scheme) or 'none'})")
        if url.userinfo:
            raise OutOfScope("a URL with a user name in it")
        if url.host != self.host or (url.port or _DEFAULT_PORTS.get(url.scheme, 0)) != self.port:
            raise OutOfScope("a URL on another host")
        raw_path = url.raw_path.decode("ascii", "replace").split("?", 1)[0]
        if not raw_path.startswith(self.prefix):
            raise OutOfScope("a URL outside the camera's path")
        for segment in raw_path[len(self.prefix) :].split("/"):
            decoded = unquote_to_bytes(segment).decode("latin-1")
            if decoded in (".", ".."):
                raise OutOfScope("a URL with a '..' or '.' segment")
            if not _SAFE_SEGMENT.fullmatch(decoded):
                raise OutOfScope("a URL with an empty, encoded-slash or unusual path segment")

    def resolve(self, base: httpx.URL, reference: str) -> httpx.URL:
        """The URL a playlist line names, relative to BASE; OutOfScope when it leaves the scope."""
        if len(reference) > MAX_URI_CHARS:
            raise OutOfScope(f"a URI longer than {MAX_URI_CHARS} characters")
        if _UNPRINTABLE.search(reference) or " " in reference or "\\" in reference:
            raise OutOfScope("a URI with spaces, backslashes or control characters")
        try:
            url = base.join(reference)
        except (httpx.InvalidURL, ValueError, UnicodeError):
            raise OutOfScope("a URI that is not a usable URL") from None
        self.check(url)
        return url.copy_with(fragment=None)


def _shown(text: str) -> str:
    return shown(text, 16)


def shown(value: Any, limit: int = MAX_SHOWN_CHARS) -> str:
    """A camera-chosen value as printable one-line ASCII of at most LIMIT characters."""
    text = value if isinstance(value, str) else repr(value)
    text = _UNPRINTABLE.sub("?", text[: limit * 4])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str, limit: int = 300) -> str:
    """Any message as one printable line (newlines and escapes from a camera cannot split it)."""
    text = " ".join(text.split())
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class BadJson(ValueError):
    """An answer that is not JSON this code can use."""


def _refuse_constant(name: str) -> Any:
    raise BadJson(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """Parse a camera's JSON answer: strict (no NaN/Infinity), bounded in depth."""
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadJson("not JSON") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise BadJson(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def _depth(data: Any) -> int:
    """Nesting depth without recursion (the value came from a camera)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            break
        if isinstance(value, dict):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, level + 1) for v in value)
    return deepest


def playlist_lines(body: bytes) -> list[str]:
    """The non-empty lines of a playlist body; BadPlaylist when it is not a usable HLS playlist."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPlaylist("not UTF-8 text") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_PLAYLIST_LINES:
        raise BadPlaylist(f"more than {MAX_PLAYLIST_LINES} lines")
    if not lines or lines[0] != "#EXTM3U":
        raise BadPlaylist("not an HLS playlist")
    return lines


class BadPlaylist(ValueError):
    """A playlist this code will not follow."""
