"""Find cameras and their secure ids in Netatmo's cloud answers (saved files or a live token)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

DEFAULT_API_URL = "https://api.netatmo.com"
CAMERA_TYPES = {"NOC": "Presence", "NACamera": "Welcome"}
SECURE_ID_SHAPE = re.compile(r"^[0-9a-f]{32}$")
SCOPE_HINT = "it needs read_presence access_presence (read_camera access_camera for Welcome)"
# Netatmo's error codes for tokens (their API reference): 2 invalid, 3 expired, 13 scope.
TOKEN_CODES = {2, 3}
SCOPE_CODE = 13


class DiscoverError(Exception):
    """The cloud cannot be asked, or refused; one line."""


class AnswerError(DiscoverError):
    """The cloud's answer cannot be used (not JSON, wrong shape, a value of the wrong form);
    one line naming the place in the answer. Nothing of the answer has been used."""


# Every value from the cloud is checked against these before anything uses it: an answer is
# hostile input (a saved file from anywhere, or whatever answers at --api-url).
MAX_ANSWER_BYTES = 16 * 1024 * 1024
MAX_HOMES = 64
MAX_MODULES = 1024  # per home; a camera subnet (/24 at most) holds fewer cameras
MAX_TEXT = 128  # camera and home names
MAX_URL = 2048
MAC = re.compile(r"\A[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\Z")
MODULE_TYPE = re.compile(r"\A[A-Za-z0-9_]{1,32}\Z")
HOME_ID = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
SECURE_ID = re.compile(r"\A[0-9a-fA-F]{1,128}\Z")
# Bidirectional overrides and isolates: printed, they reorder the rest of the terminal line.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


@dataclass
class DiscoveredCamera:
    name: str
    mac: str
    type: str
    home: str
    secure_id: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> str:
        return CAMERA_TYPES.get(self.type, self.type or "?")


def _show(value: Any) -> str:
    """A hostile value, safe to print: repr escapes control characters; long ones are cut."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _printable(text: str, limit: int = 200) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _text(value: Any, where: str, what: str) -> str:
    """A name from the cloud: a string, bounded, without control characters (it is printed)."""
    from appliance.schema import string_problem

    if value is None:
        return ""
    if not isinstance(value, str):
        raise AnswerError(f"{where}: {what} must be a string, not {_show(value)}")
    if len(value) > MAX_TEXT:
        raise AnswerError(f"{where}: {what} is {len(value)} characters long; at most {MAX_TEXT}")
    if string_problem(value) or any(c in BIDI_CONTROLS for c in value):
        raise AnswerError(f"{where}: {what} {_show(value)} holds a control character")
    return value


def _list(value: Any, where: str, limit: int) -> list[dict[str, Any]]:
    """A list of objects (None or absent: empty), at most LIMIT long."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise AnswerError(f"{where}: must be a list, not {_show(value)}")
    if len(value) > limit:
        raise AnswerError(f"{where}: {len(value)} entries; at most {limit}")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise AnswerError(f"{where}[{i}]: must be an object, not {_show(item)}")
    return value


def _mac(value: Any, where: str) -> str:
    if not isinstance(value, str) or not MAC.match(value):
        raise AnswerError(f"{where}: {_show(value)} is not a MAC address")
    return value.lower()


def secure_id_from_vpn_url(vpn_url: Any) -> str | None:
    """`https://prodvpn-eu-N.netatmo.net/restricted/10.255.x.y/<SECURE-ID>/<token>,,` -> id."""
    if not isinstance(vpn_url, str) or not vpn_url:
        return None
    try:
        segments = [s for s in urlsplit(vpn_url).path.split("/") if s]
    except ValueError:  # e.g. a malformed IPv6 host
        return None
    if "restricted" in segments:
        segments = segments[segments.index("restricted") + 1 :]
    # The tunnel address comes first, then the secure id.
    if len(segments) >= 2 and re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", segments[0]):
        return segments[1]
    return None


def _camera(
    raw: dict[str, Any],
    where: str,
    home: str,
    status: dict[str, Any] | None = None,
    status_where: str = "homestatus",
) -> DiscoveredCamera:
    mac = _mac(raw.get("id"), f"{where}.id")
    kind = raw.get("type", "")
    if not isinstance(kind, str) or (kind and not MODULE_TYPE.match(kind)):
        raise AnswerError(f"{where}.type: {_show(kind)} is not a device type")
    name = _text(raw.get("name"), f"{where}.name", "the name")
    vpn_where = f"{where}.vpn_url" if status is None else f"{status_where} module {mac}: vpn_url"
    vpn_url = (status or raw).get("vpn_url")
    if vpn_url is not None and (not isinstance(vpn_url, str) or len(vpn_url) > MAX_URL):
        raise AnswerError(f"{vpn_where}: must be a URL of at most {MAX_URL} characters")
    secure_id = secure_id_from_vpn_url(vpn_url)
    if secure_id is not None and not SECURE_ID.match(secure_id):
        # Never echoed: it may be a real secure id with a stray character.
        raise AnswerError(f"{vpn_where}: its secure id is not 1-128 hexadecimal digits")
    camera = DiscoveredCamera(name=name or mac, mac=mac, type=kind, home=home, secure_id=secure_id)
    if vpn_url is None:
        camera.notes.append("no vpn_url (camera offline, or the token lacks access_* scope)")
    elif camera.secure_id is None:
        camera.notes.append("vpn_url in an unknown shape")
    elif len(camera.secure_id) != 32:
        camera.notes.append("secure id is not 32 hex characters (kept anyway)")
    return camera


def _body(answer: Any, what: str) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise AnswerError(f"{what}: not a JSON object")
    body = answer.get("body", answer)
    if not isinstance(body, dict):
        raise AnswerError(f"{what}: `body` is not an object")
    return body


def _homes(answer: Any, what: str) -> list[dict[str, Any]]:
    homes = _body(answer, what).get("homes")
    if not isinstance(homes, list):
        raise AnswerError(f"{what}: no body.homes list")
    return _list(homes, f"{what}: body.homes", MAX_HOMES)


def _unique(cameras: list[DiscoveredCamera], what: str) -> list[DiscoveredCamera]:
    seen: set[str] = set()
    for camera in cameras:
        if camera.mac in seen:
            raise AnswerError(f"{what}: camera {camera.mac} appears twice")
        seen.add(camera.mac)
    return cameras


def from_gethomedata(answer: Any, what: str = "gethomedata") -> list[DiscoveredCamera]:
    """Cameras of a `/api/gethomedata` answer."""
    cameras = []
    for h, home in enumerate(_homes(answer, what)):
        where = f"{what}: body.homes[{h}]"
        home_name = _text(home.get("name"), f"{where}.name", "the name")
        for c, raw in enumerate(_list(home.get("cameras"), f"{where}.cameras", MAX_MODULES)):
            cameras.append(_camera(raw, f"{where}.cameras[{c}]", home_name))
    return _unique(cameras, what)


def home_id(home: dict[str, Any], where: str) -> str | None:
    """A home's id, checked: it goes into the homestatus request."""
    value = home.get("id")
    if value is None:
        return None
    if not isinstance(value, str) or not HOME_ID.match(value):
        raise AnswerError(f"{where}.id: {_show(value)} is not a home id")
    return value


def from_homesdata(
    homesdata: Any,
    homestatus: list[Any],
    what: str = "homesdata",
    status_what: str = "homestatus",
) -> list[DiscoveredCamera]:
    """Cameras of a `/api/homesdata` answer, with vpn_urls from `/api/homestatus` answers."""
    homes = _homes(homesdata, what)
    statuses: dict[str, dict[str, Any]] = {}
    for n, answer in enumerate(homestatus):
        at = f"{status_what}[{n}]" if len(homestatus) > 1 else status_what
        home = _body(answer, at).get("home")
        if not isinstance(home, dict) or not isinstance(home.get("modules", []), list):
            raise AnswerError(f"{at}: no body.home.modules list")
        for module in _list(home.get("modules"), f"{at}: body.home.modules", MAX_MODULES):
            module_id = module.get("id")
            # Other devices' ids are no concern of ours; only a camera's status is used.
            if isinstance(module_id, str) and MAC.match(module_id):
                statuses[module_id.lower()] = module
    cameras = []
    for h, home in enumerate(homes):
        where = f"{what}: body.homes[{h}]"
        home_name = _text(home.get("name"), f"{where}.name", "the name")
        home_id(home, where)
        for m, module in enumerate(_list(home.get("modules"), f"{where}.modules", MAX_MODULES)):
            kind = module.get("type")
            if not isinstance(kind, str) or kind not in CAMERA_TYPES:
                continue  # a weather station, a smoke alarm...: not read any further
            at = f"{where}.modules[{m}]"
            mac = _mac(module.get("id"), f"{at}.id")
            cameras.append(_camera(module, at, home_name, statuses.get(mac, {}), status_what))
    return _unique(cameras, what)


def from_saved(data: Any, what: str) -> list[DiscoveredCamera]:
    """A saved gethomedata answer, or `{"homesdata": ..., "homestatus": ... | [...]}`."""
    if isinstance(data, dict) and "homesdata" in data:
        status = data.get("homestatus") or []
        return from_homesdata(
            data["homesdata"],
            status if isinstance(status, list) else [status],
            f"{what}: homesdata",
            f"{what}: homestatus",
        )
    if isinstance(data, dict):
        homes = _body(data, what).get("homes")
        if isinstance(homes, list) and any(isinstance(h, dict) and "modules" in h for h in homes):
            return from_homesdata(data, [], what)
        if isinstance(homes, list):
            return from_gethomedata(data, what)
    raise AnswerError(
        f"{what}: neither a gethomedata answer (body.homes[].cameras) "
        'nor {"homesdata": ..., "homestatus": ...}'
    )


# ---------------------------------------------------------------------------
# The live API


def _api_error(status: int, data: Any, endpoint: str) -> DiscoverError:
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else _show(code)
        # The cloud's own words, printed: one line, bounded, no control characters.
        message = _printable(str(error.get("message", "")).strip())
        detail = f"HTTP {status}, error {code}: {message}"
        if code == SCOPE_CODE or (status == 403 and code not in TOKEN_CODES):
            return DiscoverError(
                f"Netatmo refused {endpoint}: the token lacks a scope ({detail}); {SCOPE_HINT}"
            )
        if status in (401, 403) or code in TOKEN_CODES:
            return DiscoverError(f"Netatmo refused the token ({detail}); get a fresh access token")
        return DiscoverError(f"Netatmo's {endpoint} failed ({detail})")
    if status in (401, 403):
        return DiscoverError(f"Netatmo refused the token (HTTP {status}); get a fresh access token")
    return DiscoverError(f"Netatmo's {endpoint} answered HTTP {status} without an error object")


def _get(client: httpx.Client, api_url: str, endpoint: str, **params: str) -> Any:
    url = f"{api_url.rstrip('/')}/api/{endpoint}"
    try:
        with client.stream("GET", url, params=params or None) as response:
            status = response.status_code
            # Read at most MAX_ANSWER_BYTES: an endless answer cannot exhaust the controller.
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise AnswerError(
                        f"Netatmo's {endpoint} answered more than "
                        f"{MAX_ANSWER_BYTES // 2**20} MiB: not an answer"
                    )
    except httpx.TimeoutException:
        raise DiscoverError(f"{api_url}: no answer within the timeout") from None
    except httpx.HTTPError as err:
        reason = (
            "connection refused"
            if "refused" in str(err).lower() or isinstance(err, httpx.ConnectError)
            else type(err).__name__
        )
        raise DiscoverError(f"{api_url}: cannot reach Netatmo's API ({reason})") from None
    if status == 404:
        raise _NotFound(endpoint)
    try:
        data = json.loads(bytes(body).decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        data = None
        if status == 200:
            raise AnswerError(
                f"Netatmo's {endpoint} answered with something that is not JSON"
            ) from None
    if status != 200 or (isinstance(data, dict) and isinstance(data.get("error"), dict)):
        raise _api_error(status, data, endpoint)
    return data


class _NotFound(Exception):
    pass


def fetch(
    token: str, api_url: str = DEFAULT_API_URL, timeout: float = 15.0
) -> list[DiscoveredCamera]:
    """Ask Netatmo's API: gethomedata, or homesdata + homestatus where gethomedata is gone."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    with httpx.Client(headers=headers, timeout=timeout, trust_env=False) as client:
        try:
            return from_gethomedata(_get(client, api_url, "gethomedata"), "gethomedata")
        except _NotFound:
            pass
        try:
            homesdata = _get(client, api_url, "homesdata")
            homes = _homes(homesdata, "homesdata")
            ids = [home_id(h, f"homesdata: body.homes[{i}]") for i, h in enumerate(homes)]
            statuses = [_get(client, api_url, "homestatus", home_id=i) for i in ids if i]
        except _NotFound as err:
            raise DiscoverError(f"{api_url}: /api/{err} not found (is --api-url right?)") from None
        return from_homesdata(homesdata, statuses)


def load_saved(path: str) -> list[DiscoveredCamera]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_ANSWER_BYTES + 1)
    except OSError as err:
        raise AnswerError(f"{path}: cannot read: {err.strerror or err}") from None
    if len(raw) > MAX_ANSWER_BYTES:
        raise AnswerError(f"{path}: larger than {MAX_ANSWER_BYTES // 2**20} MiB: not an answer")
    return from_saved(_json(raw, path), path)


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise AnswerError(f"{what}: not JSON (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise AnswerError(f"{what}: not JSON ({str(err).splitlines()[0]})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# ---------------------------------------------------------------------------
# Merging into an inventory


@dataclass
class MergePlan:
    """What `discover --write` will change in one appliance's camera list."""

    added: list[tuple[DiscoveredCamera, dict[str, Any]]] = field(default_factory=list)
    updated: list[tuple[DiscoveredCamera, str]] = field(default_factory=list)
    unchanged: list[tuple[DiscoveredCamera, str]] = field(default_factory=list)
    skipped: list[tuple[DiscoveredCamera, str]] = field(default_factory=list)


def plan_merge(discovered: list[DiscoveredCamera], appliance_vars: dict[str, Any]) -> MergePlan:
    """Match by MAC: new cameras get a unique name and the next free reservation
    (`cloud: block`); known ones get their secure id updated. Nothing is dropped."""
    from appliance.inventory_edit import next_free_ip, slugify

    existing = [c for c in appliance_vars.get("cameras") or [] if isinstance(c, dict)]
    by_mac = {str(c.get("mac", "")).lower(): c for c in existing}
    names = {str(c.get("name")) for c in existing}
    taken_ips: set[str] = set()
    plan = MergePlan()
    for camera in discovered:
        if camera.type not in CAMERA_TYPES:
            plan.skipped.append((camera, f"not a camera this appliance serves ({camera.type})"))
            continue
        known = by_mac.get(camera.mac)
        if known is not None:
            if camera.secure_id is None:
                plan.unchanged.append((camera, str(known.get("name"))))
            elif known.get("secure_id") != camera.secure_id:
                plan.updated.append((camera, str(known.get("name"))))
            else:
                plan.unchanged.append((camera, str(known.get("name"))))
            continue
        if camera.secure_id is None:
            plan.skipped.append((camera, "no secure id found"))
            continue
        name = slugify(camera.name, names)
        names.add(name)
        ip = next_free_ip(appliance_vars, taken_ips)
        taken_ips.add(ip)
        entry = {
            "name": name,
            "mac": camera.mac,
            "ip": ip,
            "secure_id": camera.secure_id,
            "cloud": "block",
        }
        plan.added.append((camera, entry))
    return plan
