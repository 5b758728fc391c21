"""The lab image's variants and releases (appliance/lab/image.py), without building one: which
packages each gets, where each is cached, and that a build prunes only its own stale images."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from appliance.lab import image


def test_trixie_gets_nginx_where_bookworm_gets_nginx_light() -> None:
    assert image.packages("bookworm") == image.PACKAGES  # the default image's key stays
    trixie = image.packages("trixie")
    assert "nginx" in trixie and "nginx-light" not in trixie
    assert image.packages("trixie", "nm")[-1] == "network-manager"


def test_a_variant_is_cached_apart_from_the_default_image() -> None:
    default, variant = image.image_dir("bookworm"), image.image_dir("bookworm", "nm")
    assert default.name.startswith("bookworm-") and not default.name.startswith("bookworm-nm-")
    assert variant.name.startswith("bookworm-nm-")
    assert image.image_key("bookworm") != image.image_key("bookworm", "nm")
    assert image.image_key("bookworm") != image.image_key("trixie")


def test_a_build_prunes_only_stale_images_of_its_own_release_and_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image, "CACHE_ROOT", tmp_path)
    names = [
        "bookworm-111111111111",  # stale default
        "bookworm-222222222222",  # the new default
        "bookworm-nm-333333333333",  # the variant: another image, kept
        "trixie-444444444444",
        "trixie-nm-555555555555",
    ]
    for name in names:
        (tmp_path / name).mkdir()
    image._prune_old("bookworm", "", keep=tmp_path / "bookworm-222222222222")
    assert sorted(p.name for p in tmp_path.iterdir()) == names[1:]
    (tmp_path / "trixie-nm-666666666666").mkdir()
    image._prune_old("trixie", "nm", keep=tmp_path / "trixie-nm-666666666666")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bookworm-222222222222",
        "bookworm-nm-333333333333",
        "trixie-444444444444",
        "trixie-nm-666666666666",
    ]


def test_the_variants_files_land_with_the_modes_their_programs_need(tmp_path: Path) -> None:
    image._copy_assets(tmp_path, image.assets_dir("nm"))
    nm = tmp_path / "etc/NetworkManager"
    # NetworkManager ignores a connection profile that others can read.
    profile = nm / "system-connections/lab-radio.nmconnection"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert stat.S_IMODE((nm / "conf.d/10-presence-lab.conf").stat().st_mode) == 0o644
    assert "interface-name=wlan0" in profile.read_text()


def test_an_unknown_variant_is_one_line() -> None:
    with pytest.raises(image.LabError, match="image variant wifi7: choose one of nm"):
        image.ensure_image("bookworm", print, "wifi7")
