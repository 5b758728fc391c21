"""Fixtures for the day-2 command tests: emulated cameras on loopback and inventories for them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.emulator.server import EmulatedCamera

# Loopback addresses for the emulators (127.0.0.0/8 is all loopback on Linux); ports are ephemeral.
FIRST_ADDRESS = 150


def inventory_text(cameras: list[dict[str, Any]], **extra_vars: Any) -> str:
    """An inline inventory with one appliance serving `cameras`."""
    group_vars: dict[str, Any] = {
        "wifi": {
            "ssid": "Cameras",
            "passphrase": "correct horse battery",
            "country": "FR",
            "channel": 6,
        },
        "camera_network": {
            "interface": "wlan0",
            "address": "10.42.0.1/24",
            "dhcp_range": ["10.42.0.100", "10.42.0.200"],
        },
        "web": {
            "server_name": "pi.lan",
            "users": [{"name": "admin", "password": "s3cret-web"}],
            "tls_cert": None,
            "tls_key": None,
        },
        "cameras": cameras,
        **extra_vars,
    }
    doc = {
        "all": {
            "children": {
                "appliances": {
                    "hosts": {"pi": {"ansible_host": "127.0.0.1"}},
                    "vars": group_vars,
                }
            }
        }
    }
    return yaml.safe_dump(doc, sort_keys=False)


def camera_entry(camera: EmulatedCamera, *, secure_id: str | None = None) -> dict[str, Any]:
    index = int(camera.host.rsplit(".", 1)[1])
    return {
        "name": camera.name,
        "mac": f"70:ee:50:00:00:{index:02x}",
        "ip": camera.host,
        "port": camera.port,
        "secure_id": secure_id or camera.secure_id,
        "cloud": "block",
    }


@pytest.fixture
def make_cameras() -> Iterator[Any]:
    """Start emulated cameras on 127.0.0.150+; every one is stopped at teardown."""
    started: list[EmulatedCamera] = []

    def make(count: int = 1, **options: Any) -> list[EmulatedCamera]:
        cameras = []
        for _ in range(count):
            index = FIRST_ADDRESS + len(started)
            camera = EmulatedCamera(
                f"cam-{len(started) + 1}", secrets.token_hex(16), f"127.0.0.{index}", 0, **options
            )
            started.append(camera)
            camera.start()
            cameras.append(camera)
        return cameras

    try:
        yield make
    finally:
        for camera in started:
            camera.stop()


def write_inventory(directory: Path, cameras: list[dict[str, Any]], **extra_vars: Any) -> Path:
    path = directory / "inventory.yml"
    path.write_text(inventory_text(cameras, **extra_vars))
    return path
