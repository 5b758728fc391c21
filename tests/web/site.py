"""A web site for tests and the benchmark: the web role's rendered nginx in a namespace, cameras, clients.

Topology (addresses only from 10.203.96.0/20, names prefixed paw-):

    test process (host) --veth pawu<tag>-- [netns paw-pi-<tag>: nginx] --veth pawc<tag>-- cameras
    10.203.96.(4k+1)/30        uplink0 10.203.96.(4k+2)  cam0 10.203.100.(8k+1)/29   .(8k+2..)

The cameras (emulators, and one badly behaved test double) listen in the host namespace on
their own addresses of pawc<tag>, so the tests read their counters directly; nginx reaches
them across the veth as a Pi reaches its cameras over Wi-Fi.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import ssl
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.certs import make_self_signed
from tests.web.evil_camera import EvilCamera
from tests.web.hlsjs import fetch_hlsjs, pinned

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"
ARTIFACTS = REPO / "test-artifacts"
WEB_USER = "www-data"


def run(
    argv: list[str], timeout: float = 20, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command with a bounded wait; on failure show what it printed."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


def render_web(inventory_file: Path, host: str, out: Path) -> list[Any]:
    """Render the web role's files.yml templates through the project's one rendering path."""
    from appliance.inventory import load_inventory
    from appliance.render import render_appliance

    return render_appliance(load_inventory(str(inventory_file)), host, out, roles=["web"])


@dataclass
class Camera:
    """One camera of the site as the tests see it."""

    name: str
    ip: str
    secure_id: str
    emulated: bool = True
    process: subprocess.Popen[bytes] | None = None
    double: EvilCamera | None = None
    log: Path | None = None

    @property
    def control(self) -> str:
        return f"http://{self.ip}"

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.control}/_emulator/stats", timeout=5).json()

    def reset(self) -> None:
        httpx.post(f"{self.control}/_emulator/reset?scope=all", timeout=5).raise_for_status()

    def fault(self, mode: str, path: str = "", delay: float | None = None) -> None:
        params: dict[str, Any] = {"mode": mode}
        if path:
            params["path"] = path
        if delay is not None:
            params["delay"] = delay
        httpx.post(f"{self.control}/_emulator/fault", params=params, timeout=5).raise_for_status()

    def start(self) -> None:
        assert self.emulated and self.log is not None
        env = dict(os.environ, PRESENCE_EMULATOR_SECURE_ID=self.secure_id)
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                str(VENV_BIN / "presence-appliance"),
                "emulate",
                "--name",
                self.name,
                "--listen",
                f"{self.ip}:80",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120  # the first start renders the test video with ffmpeg
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"emulator {self.name} exited: {self.log.read_text()[-800:]}")
            try:
                if httpx.get(f"{self.control}/_emulator/stats", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"emulator {self.name} did not answer within 120 s")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.process = None


@dataclass
class WebSite:
    """nginx with the web role's rendered config, in its own namespace, in front of cameras."""

    root: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:5])
    slot: int = field(default_factory=lambda: random.randrange(1, 120))
    namespace: str = ""
    cameras: dict[str, Camera] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    nginx: subprocess.Popen[bytes] | None = None
    server_name: str = "cams.paw.test"
    # The address block (10.203.<octet>.0/22 uplinks, the next /22 camera networks) and the
    # prefix of namespace and veth names: another test file can take its own.
    octet: int = 96
    names: str = "paw"
    _viewer_hash: str = ""
    _veths: list[str] = field(default_factory=list)
    _namespaces: list[str] = field(default_factory=list)

    # Addresses of this site (one /30 uplink, one /29 camera network per slot).
    @property
    def host_ip(self) -> str:
        return f"10.203.{self.octet + self.slot // 64}.{(self.slot % 64) * 4 + 1}"

    @property
    def pi_ip(self) -> str:
        return f"10.203.{self.octet + self.slot // 64}.{(self.slot % 64) * 4 + 2}"

    def camera_ip(self, index: int) -> str:
        return f"10.203.{self.octet + 4 + self.slot // 32}.{(self.slot % 32) * 8 + 1 + index}"

    @property
    def prefix(self) -> Path:
        return self.root

    @property
    def conf(self) -> Path:
        return self.root / "etc/nginx/nginx.conf"

    @property
    def cert(self) -> Path:
        return self.root / "tls/server.crt"

    @property
    def base_url(self) -> str:
        return f"https://{self.pi_ip}"

    # --- building -------------------------------------------------------------------
    def network(self) -> None:
        self.namespace = f"{self.names}-pi-{self.tag}"
        run(["ip", "netns", "add", self.namespace])
        self._namespaces.append(self.namespace)
        self.ns(["ip", "link", "set", "lo", "up"])
        for kind, inner, host_addr, inner_addr in (
            ("u", "uplink0", f"{self.host_ip}/30", f"{self.pi_ip}/30"),
            ("c", "cam0", None, f"{self.camera_ip(0)}/29"),
        ):
            outer = f"{self.names}{kind}{self.tag}"
            run(["ip", "link", "add", outer, "type", "veth", "peer", "name", f"{outer}x"])
            self._veths.append(outer)
            run(["ip", "link", "set", f"{outer}x", "netns", self.namespace])
            self.ns(["ip", "link", "set", f"{outer}x", "name", inner])
            self.ns(["ip", "addr", "add", inner_addr, "dev", inner])
            self.ns(["ip", "link", "set", inner, "up"])
            if host_addr:
                run(["ip", "addr", "add", host_addr, "dev", outer])
            run(["ip", "link", "set", outer, "up"])

    def ns(
        self, argv: list[str], timeout: float = 20, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", self.namespace, *argv], timeout=timeout, check=check)

    def add_camera(
        self, name: str, emulated: bool = True, ip: str | None = None, prefix: int = 29
    ) -> Camera:
        """A camera on the camera network; `ip`/`prefix` for one beyond the site's /29."""
        index = len(self.cameras) + 1
        ip = ip or self.camera_ip(index)
        run(["ip", "addr", "add", f"{ip}/{prefix}", "dev", f"{self.names}c{self.tag}"])
        camera = Camera(
            name, ip, secrets.token_hex(16), emulated, log=self.root / f"camera-{name}.log"
        )
        self.cameras[name] = camera
        if emulated:
            camera.start()
        else:
            camera.double = EvilCamera(ip).start()
        return camera

    def inventory(self, **overrides: Any) -> dict[str, Any]:
        """The appliance's variables: the schema's keys plus the web role's path knobs."""
        root = self.root
        variables: dict[str, Any] = {
            "uplink_interface": "uplink0",
            "web": {
                "server_name": self.server_name,
                "users": [
                    {"name": "admin", "password": self.users["admin"]},
                    # A hash given verbatim (bcrypt, as `htpasswd -B` makes it).
                    {"name": "viewer", "password_hash": self.viewer_hash},
                ],
                "tls_cert": None,
                "tls_key": None,
            },
            "cameras": [
                {
                    "name": c.name,
                    "mac": f"70:ee:50:00:00:{i:02x}",
                    "ip": c.ip,
                    "secure_id": c.secure_id,
                    "cloud": "block",
                }
                for i, c in enumerate(self.cameras.values(), start=1)
            ],
            "web_nginx_conf": str(root / "etc/nginx/nginx.conf"),
            "web_htpasswd_file": str(root / "etc/nginx/presence-appliance.htpasswd"),
            "web_tls_dir": str(root / "tls"),
            "web_root": str(root / "www"),
            "web_cache_dir": str(root / "cache"),
            "web_temp_dir": str(root / "tmp"),
            "web_log_dir": str(root / "log"),
            "web_pid_file": str(root / "run/nginx.pid"),
            "web_listen_addresses": [self.pi_ip],
            "web_fail2ban_dir": str(root / "fail2ban"),
            "web_systemd_dir": str(root / "systemd"),
            # Tests make many refused requests on purpose: the login limit is a test of its own.
            "web_login_rate": "6000r/m",
            "web_login_burst": 1000,
        }
        variables.update(overrides)
        return {"all": {"children": {"appliances": {"hosts": {"paw-pi": {}}, "vars": variables}}}}

    @property
    def viewer_hash(self) -> str:
        if not self._viewer_hash:
            out = run(["htpasswd", "-nbB", "-C", "5", "x", self.users["viewer"]]).stdout.strip()
            self._viewer_hash = out.split(":", 1)[1]
        return self._viewer_hash

    def render(self, **overrides: Any) -> None:
        """Render the role's files into place under the prefix, as the role would write them."""
        inventory = self.root / "inventory.yml"
        inventory.write_text(yaml.safe_dump(self.inventory(**overrides), sort_keys=False))
        staging = self.root / "rendered"
        shutil.rmtree(staging, ignore_errors=True)
        for item in render_web(inventory, "paw-pi", staging):
            # Never write outside the prefix, whatever a template's dest says.
            assert item.path.startswith(str(self.root) + "/"), item.path
            target = Path(item.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(staging / item.path.lstrip("/"), target)
        # Owners the role sets (render only sets modes): the logins file is nginx's to read.
        shutil.chown(self.root / "etc/nginx/presence-appliance.htpasswd", "root", WEB_USER)

    def prepare(self) -> None:
        for sub, mode in (
            ("etc/nginx", 0o755),
            ("www/vendor", 0o755),
            ("tls", 0o700),
            ("log", 0o755),
            ("run", 0o755),
            ("tmp", 0o755),
        ):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
            (self.root / sub).chmod(mode)
        (self.root / "cache").mkdir(mode=0o700, exist_ok=True)
        (self.root / "tmp/presence-gate").mkdir(mode=0o750, exist_ok=True)
        shutil.chown(self.root / "tmp/presence-gate", "root", WEB_USER)
        shutil.chown(self.root / "cache", WEB_USER, WEB_USER)
        # The role's self-signed certificate, made the way tasks/tls.yml makes it.
        make_self_signed(
            self.root / "tls/server.key",
            self.cert,
            self.server_name,
            f"DNS:{self.server_name},IP:{self.pi_ip}",
        )
        version, _ = pinned()
        shutil.copy2(fetch_hlsjs(), self.root / f"www/vendor/hls-{version}.min.js")

    def nginx_test(self, conf: Path | None = None) -> subprocess.CompletedProcess[str]:
        """The role's validate command (nginx -t -q -c FILE), in the namespace owning the addresses."""
        return self.ns(["nginx", "-t", "-q", "-c", str(conf or self.conf)], check=False)

    def start_nginx(self) -> None:
        result = self.nginx_test()
        assert result.returncode == 0, result.stderr
        log = (self.root / "log/nginx-stderr.log").open("ab")
        self.nginx = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.namespace,
                "nginx",
                "-c",
                str(self.conf),
                "-g",
                "daemon off;",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                self.client(auth=None).get("/", timeout=1)
                return
            if self.nginx.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"nginx did not start: {(self.root / 'log/nginx-stderr.log').read_text()}"
        )

    def reload_nginx(self) -> None:
        """SIGHUP, then wait (bounded) until only processes started on the new config run:
        new workers up and every old one gone (an old worker still accepting would answer with
        the old config, also on the gate's socket, which every camera request goes through)."""
        assert self.nginx is not None
        before = self._nginx_children()
        os.kill(self.nginx.pid, signal.SIGHUP)
        deadline = time.monotonic() + 15
        while True:
            now = self._nginx_children()
            if now and not now & before:
                return
            assert time.monotonic() < deadline, f"nginx reload unfinished: {before} -> {now}"
            time.sleep(0.05)

    def _nginx_children(self) -> set[int]:
        """PIDs of the nginx master's processes (`ip netns exec` exec()s nginx: same PID)."""
        assert self.nginx is not None
        pid = self.nginx.pid
        try:
            return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
        except OSError:
            return set()

    def restart_nginx_with_an_empty_cache(self) -> None:
        """So a test never sees answers another test cached: nginx keeps its cache index in
        memory, so it is stopped, the cache emptied, and nginx started again."""
        self.stop_nginx()
        for entry in (self.root / "cache").iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        self.start_nginx()

    def stop_nginx(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()
            try:
                self.nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.nginx.pid, signal.SIGKILL)
                self.nginx.wait(timeout=5)
        self.nginx = None

    # --- using ----------------------------------------------------------------------
    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.cert))
        return context

    def client(self, auth: tuple[str, str] | str | None = "admin", **kw: Any) -> httpx.Client:
        credentials = (auth, self.users[auth]) if isinstance(auth, str) else auth
        return httpx.Client(
            base_url=self.base_url,
            verify=self.tls_context(),
            auth=credentials,
            timeout=kw.pop("timeout", 10),
            **kw,
        )

    def logs(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in sorted((self.root / "log").glob("*.log"))
        )

    def secrets(self) -> list[str]:
        return [c.secure_id for c in self.cameras.values()]

    def cleanup(self) -> None:
        self.stop_nginx()
        for camera in self.cameras.values():
            camera.stop()
            if camera.double is not None:
                camera.double.stop()
        for veth in self._veths:
            subprocess.run(["ip", "link", "delete", veth], capture_output=True, timeout=10)
        for name in self._namespaces:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10)


def build_site(
    root: Path,
    cameras: tuple[str, ...] = ("nord", "garage"),
    evil: bool = True,
    *,
    octet: int = 96,
    names: str = "paw",
) -> WebSite:
    """A running site: namespace, cameras, rendered role files, nginx. Caller cleans up."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # nginx's workers (www-data) walk into it
    site = WebSite(
        root=root,
        users={"admin": secrets.token_urlsafe(12), "viewer": secrets.token_urlsafe(12)},
        octet=octet,
        names=names,
    )
    try:
        site.network()
        for name in cameras:
            site.add_camera(name)
        if evil:
            site.add_camera("evil", emulated=False)
        site.prepare()
        site.render()
        site.start_nginx()
    except BaseException:
        site.cleanup()
        raise
    return site
