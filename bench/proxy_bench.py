"""Benchmark the web role's camera proxy against a plain `proxy_pass`: what 20 viewers cost a camera.

One emulated camera and two real nginx instances in a network namespace (as in tests/web):
(a) this role's rendered config (cache + lock + keepalive) on :443, and (b) the hand-written
way, `location /cameras/<name>/ { proxy_pass http://<ip>/<secure-id>/; }` with the same
TLS and login, on :8443. N viewers (default 20) watch for T seconds (default 30) each, like
a player: poll the variant playlist every 1-2 s, fetch each new segment once, and fetch the
snapshot every second. Both configs run in the same invocation, one after the other,
against the same camera (counters reset in between).

Printed per config: camera-side fetches per segment and snapshots per second (the
emulator's counters), playlists per second, upstream connections, and viewer-side segment
latency p50/p95. Target for (a): at most 1.1 fetches per segment and 1 snapshot per second.

Usage (root): python bench/proxy_bench.py [--viewers 20] [--seconds 30] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.web.site import WebSite, build_site  # noqa: E402

SEGMENT = re.compile(r"^(live\d{10}\.ts)$", re.M)
PLAIN_PORT = 8443
QUALITY = "high"

PLAIN_CONF = """\
# The hand-written way: one proxy_pass per camera, nothing else.
user www-data;
worker_processes auto;
pid {root}/run/plain.pid;
error_log {root}/plain/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {root}/plain/access.log;
    client_body_temp_path {root}/plain/body;
    proxy_temp_path {root}/plain/proxy;
    fastcgi_temp_path {root}/plain/fastcgi;
    uwsgi_temp_path {root}/plain/uwsgi;
    scgi_temp_path {root}/plain/scgi;
    server {{
        listen {ip}:{port} ssl;
        ssl_certificate {root}/tls/server.crt;
        ssl_certificate_key {root}/tls/server.key;
        auth_basic "cameras";
        auth_basic_user_file {root}/etc/nginx/presence-appliance.htpasswd;
        location /cameras/{name}/ {{
            proxy_pass http://{camera_ip}/{secure_id}/;
        }}
    }}
}}
"""


@dataclass
class Viewers:
    """What the viewers saw."""

    segment_latency: list[float] = field(default_factory=list)
    segments: int = 0
    snapshots: int = 0
    playlists: int = 0
    errors: int = 0


async def viewer(base: str, site: WebSite, camera: str, seconds: float, out: Viewers) -> None:
    """One player: playlist every 1-2 s, each new segment once, snapshot every second."""
    seen: set[str] = set()
    auth = ("admin", site.users["admin"])
    async with httpx.AsyncClient(
        base_url=base, verify=site.tls_context(), auth=auth, timeout=15
    ) as client:
        end = time.monotonic() + seconds
        # Players do not start in step.
        await asyncio.sleep(random.uniform(0, 1.0))

        async def snapshots() -> None:
            while time.monotonic() < end:
                answer = await client.get(
                    f"/cameras/{camera}/live/snapshot_720.jpg?t={time.time()}"
                )
                out.snapshots += 1
                out.errors += answer.status_code != 200
                await asyncio.sleep(1.0)

        task = asyncio.create_task(snapshots())
        first = True
        while time.monotonic() < end:
            playlist = await client.get(f"/cameras/{camera}/live/files/{QUALITY}/index.m3u8")
            out.playlists += 1
            if playlist.status_code != 200:
                out.errors += 1
            else:
                names = SEGMENT.findall(playlist.text)
                # A player joining a live stream starts near the live edge.
                for name in names[-2:] if first else names:
                    if name in seen:
                        continue
                    seen.add(name)
                    started = time.monotonic()
                    segment = await client.get(f"/cameras/{camera}/live/files/{QUALITY}/{name}")
                    out.segment_latency.append(time.monotonic() - started)
                    out.segments += 1
                    out.errors += segment.status_code != 200
                first = False
            await asyncio.sleep(random.uniform(1.0, 2.0))
        await task


def measure(site: WebSite, base: str, viewers: int, seconds: float) -> dict[str, Any]:
    camera = site.cameras["nord"]
    camera.reset()
    out = Viewers()

    async def run_all() -> None:
        await asyncio.gather(*(viewer(base, site, "nord", seconds, out) for _ in range(viewers)))

    started = time.monotonic()
    asyncio.run(run_all())
    elapsed = time.monotonic() - started
    stats = camera.stats()
    fetched = {
        p: n for p, n in stats["paths"].items() if p.startswith(f"live/files/{QUALITY}/live")
    }
    latency = sorted(out.segment_latency)
    return {
        "viewers": viewers,
        "seconds": round(elapsed, 1),
        "viewer_requests": out.segments + out.snapshots + out.playlists,
        "viewer_errors": out.errors,
        "segments_watched": out.segments,
        "camera_segment_fetches": sum(fetched.values()),
        "distinct_segments": len(fetched),
        "fetches_per_segment": round(sum(fetched.values()) / max(1, len(fetched)), 2),
        "camera_snapshots_per_second": round(stats["kinds"]["snapshots"] / elapsed, 2),
        "camera_playlists_per_second": round(stats["kinds"]["playlists"] / elapsed, 2),
        "camera_connections": stats["connections"]["total"],
        "segment_latency_p50_ms": round(statistics.median(latency) * 1000, 1) if latency else None,
        "segment_latency_p95_ms": round(latency[int(0.95 * (len(latency) - 1))] * 1000, 1)
        if latency
        else None,
    }


def start_plain(site: WebSite) -> subprocess.Popen[bytes]:
    camera = site.cameras["nord"]
    (site.root / "plain").mkdir(exist_ok=True)
    conf = site.root / "plain/nginx.conf"
    conf.write_text(
        PLAIN_CONF.format(
            root=site.root,
            ip=site.pi_ip,
            port=PLAIN_PORT,
            name="nord",
            camera_ip=camera.ip,
            secure_id=camera.secure_id,
        )
    )
    conf.chmod(0o600)
    test = site.ns(["nginx", "-t", "-q", "-c", str(conf)], check=False)
    if test.returncode != 0:
        raise SystemExit(f"plain config rejected: {test.stderr.strip()}")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", site.namespace, "nginx", "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(1.0)
    return proc


def table(results: dict[str, dict[str, Any]]) -> str:
    keys = list(next(iter(results.values())))
    width = max(len(k) for k in keys)
    lines = [f"{'':<{width}}  " + "  ".join(f"{name:>14}" for name in results)]
    for key in keys:
        lines.append(f"{key:<{width}}  " + "  ".join(f"{r[key]!s:>14}" for r in results.values()))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    args = parser.parse_args()
    root = Path(f"/tmp/paw-bench-{uuid.uuid4().hex[:6]}")
    site = build_site(root, cameras=("nord",), evil=False)
    plain: subprocess.Popen[bytes] | None = None
    try:
        results = {"role config": measure(site, site.base_url, args.viewers, args.seconds)}
        plain = start_plain(site)
        results["plain proxy_pass"] = measure(
            site, f"https://{site.pi_ip}:{PLAIN_PORT}", args.viewers, args.seconds
        )
    finally:
        if plain is not None:
            plain.terminate()
            plain.wait(timeout=10)
        site.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    role = results["role config"]
    ok = (
        role["fetches_per_segment"] <= 1.1
        and role["camera_snapshots_per_second"] <= 1.0
        and role["viewer_errors"] == 0
    )
    if args.json:
        print(json.dumps({"results": results, "target_met": ok}, indent=2))
    else:
        print(table(results))
        print(
            f"target (role: <= 1.1 fetches/segment, <= 1 snapshot/s, no errors): {'met' if ok else 'MISSED'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
