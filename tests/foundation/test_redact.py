"""Secrets are masked in everything install prints, including config diffs."""

from __future__ import annotations

from appliance.secrets import MASK, Redactor, inventory_secrets, redact_diff
from tests.conftest import appliance_vars, example_data


def test_inventory_secrets_are_collected_and_masked() -> None:
    variables = appliance_vars(example_data())
    redact = Redactor(inventory_secrets(variables))
    secure_id = variables["cameras"][0]["secure_id"]
    passphrase = variables["wifi"]["passphrase"]
    password = variables["web"]["users"][0]["password"]
    text = (
        f"wpa_passphrase={passphrase} proxy_pass http://10.42.0.11/{secure_id}/live/; pw={password}"
    )
    masked = redact(text)
    assert secure_id not in masked and passphrase not in masked and password not in masked
    assert masked.count(MASK) == 3
    assert "10.42.0.11" in masked  # ordinary values stay readable


def test_diff_masks_ids_the_inventory_no_longer_names() -> None:
    old_id = "881d7b2731f8a6019bb7ac49b811768d"  # on the Pi, gone from the inventory
    diff = f"-    proxy_pass http://cam/{old_id}/live/;\n+    proxy_pass http://cam/{'5' * 32}/live/;\n     listen 443 ssl;"
    masked = redact_diff(diff, Redactor({"5" * 32}))
    assert old_id not in masked and "5" * 32 not in masked
    assert masked.splitlines()[2] == "     listen 443 ssl;"
    assert masked.count(MASK) == 2
