"""`presence-appliance emulate`: run one emulated Presence camera until SIGTERM or Ctrl-C."""

from __future__ import annotations

import ipaddress
import re
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from appliance.emulator import DEFAULT_PRODUCT_NAME, EmulatedCamera, MediaError
from appliance.emulator.ftp_export import DEFAULT_ALLOWED


def parse_listen(value: str) -> tuple[str, int]:
    """'ADDR:PORT' or '[IPv6]:PORT' -> (address, port); ClickException naming --listen."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]*):(\d{1,5})", value)
    if not match:
        raise click.ClickException(f"--listen {value!r}: expected ADDR:PORT, e.g. 0.0.0.0:80")
    host = match[1] or match[3] or "0.0.0.0"
    port = int(match[2] or match[4])
    if port > 65535:
        raise click.ClickException(f"--listen {value!r}: port {port} is above 65535")
    return host, port


@click.command()
@click.option("--name", required=True, help="Camera name (shown in snapshots and stats).")
@click.option(
    "--secure-id",
    required=True,
    envvar="PRESENCE_EMULATOR_SECURE_ID",
    show_envvar=True,
    help="The path segment every camera URL starts with. Never printed.",
)
@click.option("--listen", default="0.0.0.0:80", show_default=True, metavar="ADDR:PORT")
@click.option("--product-name", default=DEFAULT_PRODUCT_NAME, show_default=True)
@click.option(
    "--unknown-command-status",
    type=click.Choice(["404", "200"]),
    default="404",
    show_default=True,
    help="HTTP status of the HTML page answering an unknown command.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the generated video is kept [default: $XDG_CACHE_HOME or "
    "~/.cache, /presence-appliance/emulator].",
)
@click.option(
    "--ftp-allow",
    "ftp_allow",
    multiple=True,
    metavar="CIDR",
    help="A network the FTP export may upload to (repeatable) [default: 127.0.0.0/8 only].",
)
def emulate(
    name: str,
    secure_id: str,
    listen: str,
    product_name: str,
    unknown_command_status: str,
    cache_dir: Path | None,
    ftp_allow: tuple[str, ...],
) -> None:
    """Run an emulated Netatmo Presence camera (local API, snapshot, live HLS) until
    SIGTERM or Ctrl-C. Its /_emulator/ control API counts requests and injects faults."""
    host, port = parse_listen(listen)
    if not re.fullmatch(r"[0-9a-fA-F]{32}", secure_id):
        click.echo("warning: --secure-id is not 32 hex characters like a real camera's", err=True)
    for network in ftp_allow:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise click.ClickException(f"--ftp-allow {network!r}: not a network (CIDR)") from None
    try:
        camera = EmulatedCamera(
            name,
            secure_id,
            host,
            port,
            product_name=product_name,
            unknown_command_status=int(unknown_command_status),
            cache_dir=cache_dir,
            ftp_allow=ftp_allow or DEFAULT_ALLOWED,
        )
    except ValueError as err:
        raise click.ClickException(f"--secure-id: {err}") from None

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            camera.start()
        except MediaError as err:
            raise click.ClickException(str(err)) from None
        except OSError as err:
            raise click.ClickException(f"--listen {listen}: {err.strerror or err}") from None
        click.echo(f"emulated camera {name!r} listening on {camera.origin}/")
        # Short waits so the signal handler's flag is seen promptly.
        while not stop.wait(0.5):
            pass
    finally:
        camera.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
