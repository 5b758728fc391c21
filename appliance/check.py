"""The post-install check: test every camera of an inventory concurrently and report plain data."""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from appliance.camera_api import CameraClient, CameraError, CameraTarget

# Cameras tested at once; a house has a handful, this only matters for big inventories.
MAX_CONCURRENCY = 32
# A camera's ping, snapshot and stream together may take this many per-request timeouts
# (ping, then snapshot and the three-step stream side by side).
CAMERA_BUDGET_TIMEOUTS = 4
DEFAULT_TIMEOUT = 5.0
# Seconds between two rounds of run_check(wait=...) over the cameras still failing.
RETRY_PAUSE = 2.0


@functools.cache
def system_trust() -> ssl.SSLContext:
    """httpx's default trust store, loaded once per process: loading it takes about 0.1 s,
    and `install --wait` or a long inventory would otherwise pay that again and again."""
    return httpx.create_ssl_context(trust_env=False)


def client_verify(target: CameraTarget) -> ssl.SSLContext:
    """The TLS trust for TARGET's client: its pinned certificate, or the system's."""
    return target.verify if isinstance(target.verify, ssl.SSLContext) else system_trust()


class TargetError(Exception):
    """An appliance-level reason no camera behind it can be reached (no pin, no password)."""


@dataclass
class Step:
    """One thing tested on a camera: ok, failed, or not tried (ok is None)."""

    ok: bool | None
    detail: str = ""


@dataclass
class CameraResult:
    camera: str
    appliance: str
    ping: Step
    snapshot: Step
    stream: Step
    ping_ms: float | None = None

    @property
    def passed(self) -> bool:
        return bool(self.ping.ok and self.snapshot.ok and self.stream.ok)

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    @property
    def reason(self) -> str:
        """The first failure, for the table's verdict column."""
        for label, step in (
            ("ping", self.ping),
            ("snapshot", self.snapshot),
            ("stream", self.stream),
        ):
            if step.ok is False:
                return step.detail if step.detail.startswith(label) else f"{label}: {step.detail}"
        return ""


@dataclass
class CheckReport:
    """What `check` found: one result per camera, in inventory order."""

    cameras: list[CameraResult] = field(default_factory=list)
    direct: bool = False
    timeout: float = DEFAULT_TIMEOUT
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when there is at least one camera and every camera passed."""
        return bool(self.cameras) and all(c.passed for c in self.cameras)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "direct": self.direct,
            "timeout": self.timeout,
            "elapsed_s": round(self.elapsed_s, 3),
            "cameras": [
                {
                    **asdict(c),
                    "ping_ms": None if c.ping_ms is None else round(c.ping_ms, 1),
                    "verdict": c.verdict,
                    "reason": c.reason,
                }
                for c in self.cameras
            ],
        }


# ---------------------------------------------------------------------------
# From inventory to targets


def controller_dir(inventory: Any, appliance_vars: dict[str, Any]) -> Path:
    """The controller-side state directory of an inventory (where the certificate pin lives)."""
    inventory_path = Path(getattr(inventory, "path", "inventory.yml"))
    inventory_dir = inventory_path if inventory_path.is_dir() else inventory_path.parent
    configured = appliance_vars.get("appliance_controller_dir")
    if isinstance(configured, str) and configured.strip():
        # The loader templates variables; a raw default may still mention inventory_dir.
        text = re.sub(r"\{\{\s*inventory_dir\s*\}\}", str(inventory_dir), configured)
        return Path(text).expanduser()
    return inventory_dir / ".presence-appliance"


def pinned_cert_path(inventory: Any, appliance_name: str, appliance_vars: dict[str, Any]) -> Path:
    return controller_dir(inventory, appliance_vars) / "tls" / f"{appliance_name}.crt"


def _tls_settings(inventory: Any, appliance: Any) -> tuple[ssl.SSLContext | bool, str | None]:
    """How to verify the Pi: its pinned self-signed certificate, or the system CAs."""
    web = appliance.vars.get("web") or {}
    if web.get("tls_cert"):
        # A certificate the user brought is for web.server_name, issued by a real CA.
        return True, web.get("server_name") or None
    pin = pinned_cert_path(inventory, appliance.name, appliance.vars)
    if not pin.is_file():
        host = appliance.vars.get("ansible_host", appliance.name)
        raise TargetError(f"no pinned certificate for {host}; run install first")
    try:
        context = ssl.create_default_context(cafile=str(pin))
    except (ssl.SSLError, OSError) as err:
        raise TargetError(f"{pin}: not a usable certificate ({err.__class__.__name__})") from None
    # The pin is the Pi's own leaf certificate: trust it as an anchor by itself.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    # The web role's certificate always names web.server_name (its IP names depend on
    # the Pi's uplink address, which need not be ansible_host): verify that name.
    return context, web.get("server_name") or None


def _web_login(appliance: Any) -> tuple[str, str]:
    web = appliance.vars.get("web") or {}
    users = web.get("users") or []
    if not users or not isinstance(users[0], dict) or not users[0].get("name"):
        raise TargetError("the inventory has no web user to log in to the Pi's proxy")
    user = users[0]
    password = user.get("password")
    if not isinstance(password, str) or not password:
        raise TargetError(
            f"web user {user['name']!r} has only a password_hash; check needs the password "
            "(or use --direct)"
        )
    return str(user["name"]), password


def camera_target(
    inventory: Any, appliance: Any, camera: dict[str, Any], *, direct: bool
) -> CameraTarget:
    """Build the target for one camera; raise TargetError when it cannot be reached at all."""
    name = str(camera.get("name", "?"))
    secure_id = str(camera.get("secure_id") or "")
    address = str(camera.get("ip") or "")
    if direct:
        if not address or not secure_id:
            raise TargetError("the inventory gives no ip or no secure_id for this camera")
        # `port` is for tests and benchmarks (emulators on loopback); cameras listen on 80.
        port = camera.get("port")
        netloc = f"{address}:{int(port)}" if port else address
        return CameraTarget(
            name=name,
            appliance=appliance.name,
            base_url=f"http://{netloc}/{secure_id}",
            secure_id=secure_id,
            address=address,
        )
    host = str(appliance.vars.get("ansible_host") or appliance.name)
    verify, server_name = _tls_settings(inventory, appliance)
    user, password = _web_login(appliance)
    netloc = f"[{host}]" if ":" in host else host
    return CameraTarget(
        name=name,
        appliance=appliance.name,
        base_url=f"https://{netloc}/cameras/{name}",
        secure_id=secure_id,
        address=address,
        via_proxy=True,
        auth=(user, password),
        verify=verify,
        server_name=server_name,
        secrets=(password,),
    )


def iter_cameras(inventory: Any) -> Iterable[tuple[Any, dict[str, Any]]]:
    """Every (appliance, camera) pair of the inventory, in order."""
    for appliance in inventory.appliances:
        for camera in appliance.vars.get("cameras") or []:
            if isinstance(camera, dict):
                yield appliance, camera


# ---------------------------------------------------------------------------
# Running the check


def _not_tried(reason: str = "not tried") -> Step:
    return Step(None, reason)


async def _check_camera(camera: CameraClient) -> CameraResult:
    target = camera.target
    result = CameraResult(target.name, target.appliance, _not_tried(), _not_tried(), _not_tried())
    try:
        result.ping_ms = await camera.ping()
        result.ping = Step(True, f"{result.ping_ms:.0f} ms")
    except CameraError as err:
        result.ping = Step(False, str(err))
        if err.unreachable:
            # Nothing answered: the other requests would only wait for the same timeout.
            result.snapshot = result.stream = _not_tried("camera unreachable")
            return result

    async def snapshot() -> Step:
        try:
            data = await camera.snapshot()
        except CameraError as err:
            return Step(False, str(err))
        return Step(True, f"{len(data) // 1024} kB")

    async def stream() -> Step:
        try:
            variant = await camera.stream()
        except CameraError as err:
            return Step(False, str(err))
        return Step(True, variant)

    result.snapshot, result.stream = await asyncio.gather(snapshot(), stream())
    return result


async def _check_all(
    inventory: Any,
    direct: bool,
    timeout: float,
    concurrency: int,
    only: set[tuple[str, str]] | None = None,
) -> list[CameraResult]:
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency * 4, max_keepalive_connections=concurrency)
    clients: dict[tuple[str, str], httpx.AsyncClient] = {}
    jobs: list[asyncio.Future[CameraResult] | CameraResult] = []

    def client_for(target: CameraTarget) -> httpx.AsyncClient:
        # One connection pool per appliance: each has its own TLS trust.
        key = ("direct", "") if direct else ("proxy", target.appliance)
        if key not in clients:
            clients[key] = httpx.AsyncClient(
                verify=client_verify(target), limits=limits, timeout=timeout, trust_env=False
            )
        return clients[key]

    async def bounded(camera: CameraClient) -> CameraResult:
        async with semaphore:
            try:
                async with asyncio.timeout(timeout * CAMERA_BUDGET_TIMEOUTS):
                    return await _check_camera(camera)
            except TimeoutError:
                t = camera.target
                reason = f"no complete answer within {timeout * CAMERA_BUDGET_TIMEOUTS:g} s"
                return CameraResult(
                    t.name, t.appliance, Step(False, reason), _not_tried(), _not_tried()
                )
            except Exception as err:  # one odd camera must not sink the whole report
                t = camera.target
                reason = t.scrub(f"unexpected error: {type(err).__name__}: {err}")
                return CameraResult(
                    t.name, t.appliance, Step(False, reason), _not_tried(), _not_tried()
                )

    try:
        for appliance, camera in iter_cameras(inventory):
            if only is not None and (appliance.name, str(camera.get("name"))) not in only:
                continue
            try:
                target = camera_target(inventory, appliance, camera, direct=direct)
            except TargetError as err:
                step = Step(False, str(err))
                jobs.append(
                    CameraResult(
                        str(camera.get("name", "?")),
                        appliance.name,
                        step,
                        _not_tried(),
                        _not_tried(),
                    )
                )
                continue
            client = CameraClient(target, client_for(target), timeout=timeout)
            jobs.append(asyncio.ensure_future(bounded(client)))
        futures = [j for j in jobs if isinstance(j, asyncio.Future)]
        if futures:
            await asyncio.gather(*futures)
        return [j.result() if isinstance(j, asyncio.Future) else j for j in jobs]
    finally:
        for client in clients.values():
            await client.aclose()


def run_check(
    inventory: Any,
    direct: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    concurrency: int = MAX_CONCURRENCY,
    wait: float = 0.0,
) -> CheckReport:
    """Test every camera of `inventory` (an appliance.inventory.Inventory) and return the report.

    Never raises for network trouble: each failure becomes a camera's verdict and reason.
    `wait` > 0: test the failing cameras again every few seconds until they pass or `wait`
    seconds have passed (right after an install, cameras may still be joining).
    """
    started = time.perf_counter()
    results = asyncio.run(_check_all(inventory, direct, timeout, concurrency))
    deadline = time.monotonic() + wait
    while wait > 0 and not all(r.passed for r in results):
        pause = min(RETRY_PAUSE, deadline - time.monotonic())
        if pause <= 0:
            break
        time.sleep(pause)
        failing = {(r.appliance, r.camera) for r in results if not r.passed}
        again = asyncio.run(_check_all(inventory, direct, timeout, concurrency, failing))
        retried = {(r.appliance, r.camera): r for r in again}
        results = [retried.get((r.appliance, r.camera), r) for r in results]
    return CheckReport(
        cameras=results, direct=direct, timeout=timeout, elapsed_s=time.perf_counter() - started
    )


# ---------------------------------------------------------------------------
# Rendering


def _step_text(step: Step) -> str:
    if step.ok is None:
        return "-"
    return step.detail if step.ok else "FAIL"


def render_check_table(report: CheckReport, console: Any = None) -> None:
    """Print the report as a table (rich when available) followed by a one-line summary."""
    headers = ("camera", "appliance", "ping", "stream", "snapshot", "verdict")
    rows = [
        (
            c.camera,
            c.appliance,
            f"{c.ping_ms:.0f} ms" if c.ping_ms is not None else _step_text(c.ping),
            _step_text(c.stream),
            _step_text(c.snapshot),
            "pass" if c.passed else f"FAIL: {c.reason}",
        )
        for c in report.cameras
    ]
    summary = summary_line(report)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # rich is optional at the edge; plain columns do the job
        _print_plain(headers, rows, summary)
        return
    if console is None:
        console = Console()
        if not console.is_terminal:
            # Piped or captured: do not fold reasons at 80 columns, greps want whole lines.
            console = Console(width=200)
    table = Table(title=None, show_lines=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        style = "green" if row[-1] == "pass" else "red"
        table.add_row(*row[:-1], f"[{style}]{_escape(row[-1])}[/{style}]")
    console.print(table)
    console.print(summary, markup=False, highlight=False)


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def _print_plain(headers: tuple[str, ...], rows: list[tuple[str, ...]], summary: str) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    for row in (headers, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(summary)


def summary_line(report: CheckReport) -> str:
    if not report.cameras:
        return "no cameras in the inventory: nothing to check"
    passed = sum(1 for c in report.cameras if c.passed)
    way = "directly" if report.direct else "through the Pi's proxy"
    return (
        f"{passed}/{len(report.cameras)} cameras pass ({way}, "
        f"{report.elapsed_s:.1f} s, timeout {report.timeout:g} s per request)"
    )
