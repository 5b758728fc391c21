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
    """The cloud answer cannot be used; one line."""


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


def secure_id_from_vpn_url(vpn_url: Any) -> str | None:
    """`https://prodvpn-eu-N.netatmo.net/restricted/10.255.x.y/<SECURE-ID>/<token>,,` -> id."""
    if not isinstance(vpn_url, str) or not vpn_url:
        return None
    segments = [s for s in urlsplit(vpn_url).path.split("/") if s]
    if "restricted" in segments:
        segments = segments[segments.index("restricted") + 1 :]
    # The tunnel address comes first, then the secure id.
    if len(segments) >= 2 and re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", segments[0]):
        return segments[1]
    return None


def _camera(
    raw: dict[str, Any], home: str, status: dict[str, Any] | None = None
) -> DiscoveredCamera:
    mac = str(raw.get("id", "")).lower()
    vpn_url = (status or raw).get("vpn_url")
    camera = DiscoveredCamera(
        name=str(raw.get("name") or mac or "camera"),
        mac=mac,
        type=str(raw.get("type", "")),
        home=home,
        secure_id=secure_id_from_vpn_url(vpn_url),
    )
    if vpn_url is None:
        camera.notes.append("no vpn_url (camera offline, or the token lacks access_* scope)")
    elif camera.secure_id is None:
        camera.notes.append("vpn_url in an unknown shape")
    elif not SECURE_ID_SHAPE.match(camera.secure_id):
        camera.notes.append("secure id is not 32 hex characters (kept anyway)")
    return camera


def _body(answer: Any, what: str) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise DiscoverError(f"{what}: not a JSON object")
    body = answer.get("body", answer)
    if not isinstance(body, dict):
        raise DiscoverError(f"{what}: `body` is not an object")
    return body


def from_gethomedata(answer: Any, what: str = "gethomedata") -> list[DiscoveredCamera]:
    """Cameras of a `/api/gethomedata` answer."""
    homes = _body(answer, what).get("homes")
    if not isinstance(homes, list):
        raise DiscoverError(f"{what}: no body.homes list")
    cameras = []
    for home in homes:
        if not isinstance(home, dict):
            continue
        for raw in home.get("cameras") or []:
            if isinstance(raw, dict):
                cameras.append(_camera(raw, str(home.get("name", ""))))
    return cameras


def from_homesdata(
    homesdata: Any, homestatus: list[Any], what: str = "homesdata"
) -> list[DiscoveredCamera]:
    """Cameras of a `/api/homesdata` answer, with vpn_urls from `/api/homestatus` answers."""
    homes = _body(homesdata, what).get("homes")
    if not isinstance(homes, list):
        raise DiscoverError(f"{what}: no body.homes list")
    statuses: dict[str, dict[str, Any]] = {}
    for answer in homestatus:
        home = _body(answer, "homestatus").get("home")
        if not isinstance(home, dict) or not isinstance(home.get("modules", []), list):
            raise DiscoverError("homestatus: no body.home.modules list")
        for module in home.get("modules", []):
            if isinstance(module, dict) and module.get("id"):
                statuses[str(module["id"]).lower()] = module
    cameras = []
    for home in homes:
        if not isinstance(home, dict):
            continue
        for module in home.get("modules") or []:
            if not isinstance(module, dict) or module.get("type") not in CAMERA_TYPES:
                continue
            status = statuses.get(str(module.get("id", "")).lower(), {})
            cameras.append(_camera(module, str(home.get("name", "")), status))
    return cameras


def from_saved(data: Any, what: str) -> list[DiscoveredCamera]:
    """A saved gethomedata answer, or `{"homesdata": ..., "homestatus": ... | [...]}`."""
    if isinstance(data, dict) and "homesdata" in data:
        status = data.get("homestatus") or []
        return from_homesdata(
            data["homesdata"], status if isinstance(status, list) else [status], what
        )
    if isinstance(data, dict):
        homes = _body(data, what).get("homes")
        if isinstance(homes, list) and any(isinstance(h, dict) and "modules" in h for h in homes):
            return from_homesdata(data, [], what)
        if isinstance(homes, list):
            return from_gethomedata(data, what)
    raise DiscoverError(
        f"{what}: neither a gethomedata answer (body.homes[].cameras) "
        'nor {"homesdata": ..., "homestatus": ...}'
    )


# ---------------------------------------------------------------------------
# The live API


def _api_error(response: httpx.Response, endpoint: str) -> DiscoverError:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        code, message = error.get("code"), str(error.get("message", "")).strip()
        detail = f"HTTP {response.status_code}, error {code}: {message}"
        if code == SCOPE_CODE or (response.status_code == 403 and code not in TOKEN_CODES):
            return DiscoverError(
                f"Netatmo refused {endpoint}: the token lacks a scope ({detail}); {SCOPE_HINT}"
            )
        if response.status_code in (401, 403) or code in TOKEN_CODES:
            return DiscoverError(f"Netatmo refused the token ({detail}); get a fresh access token")
        return DiscoverError(f"Netatmo's {endpoint} failed ({detail})")
    if response.status_code in (401, 403):
        return DiscoverError(
            f"Netatmo refused the token (HTTP {response.status_code}); get a fresh access token"
        )
    return DiscoverError(
        f"Netatmo's {endpoint} answered HTTP {response.status_code} without an error object"
    )


def _get(client: httpx.Client, api_url: str, endpoint: str, **params: str) -> Any:
    url = f"{api_url.rstrip('/')}/api/{endpoint}"
    try:
        response = client.get(url, params=params or None)
    except httpx.TimeoutException:
        raise DiscoverError(f"{api_url}: no answer within the timeout") from None
    except httpx.HTTPError as err:
        reason = (
            "connection refused"
            if "refused" in str(err).lower() or isinstance(err, httpx.ConnectError)
            else type(err).__name__
        )
        raise DiscoverError(f"{api_url}: cannot reach Netatmo's API ({reason})") from None
    if response.status_code == 404:
        raise _NotFound(endpoint)
    if response.status_code != 200:
        raise _api_error(response, endpoint)
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        raise DiscoverError(
            f"Netatmo's {endpoint} answered with something that is not JSON"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        raise _api_error(response, endpoint)
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
            homes = _body(homesdata, "homesdata").get("homes")
            if not isinstance(homes, list):
                raise DiscoverError("homesdata: no body.homes list")
            statuses = [
                _get(client, api_url, "homestatus", home_id=str(home.get("id")))
                for home in homes
                if isinstance(home, dict) and home.get("id")
            ]
        except _NotFound as err:
            raise DiscoverError(f"{api_url}: /api/{err} not found (is --api-url right?)") from None
        return from_homesdata(homesdata, statuses)


def load_saved(path: str) -> list[DiscoveredCamera]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as err:
        raise DiscoverError(f"{path}: cannot read: {err.strerror or err}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise DiscoverError(f"{path}: not JSON ({str(err).splitlines()[0]})") from None
    return from_saved(data, path)


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
