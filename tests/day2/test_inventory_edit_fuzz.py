"""Random sequences of camera edits: the file always parses to exactly the expected camera list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.inventory_edit import InventoryDocument, add_camera_to, set_camera_in

FIXTURES = Path(__file__).parent / "fixtures"
ORIGINAL = (FIXTURES / "inventory.yml").read_text()


class _Loader(yaml.SafeLoader):
    """Reads `!vault` values as the marker "<vault>" (no password needed)."""


_Loader.add_constructor("!vault", lambda loader, node: "<vault>")


def cameras_of(text: str) -> list[dict[str, Any]]:
    data = yaml.load(text, Loader=_Loader)
    return data["all"]["children"]["appliances"]["vars"]["cameras"]


names = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
values = {
    "ip": st.integers(2, 99).map(lambda n: f"10.42.0.{n}"),
    "cloud": st.sampled_from(["allow", "block"]),
    "vlan_id": st.integers(1, 4094),
    "secure_id": st.text("0123456789abcdef", min_size=32, max_size=32),
    "note": st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
}
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), names, st.integers(0, 255)),
        st.tuples(st.just("remove"), st.integers(0, 20)),
        st.tuples(
            st.just("set"),
            st.integers(0, 20),
            st.sampled_from(sorted(values)).flatmap(lambda k: st.tuples(st.just(k), values[k])),
        ),
    ),
    max_size=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_random_edits_keep_the_model(ops, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "inventory.yml"
    path.write_text(ORIGINAL)
    doc = InventoryDocument(path)
    model = cameras_of(ORIGINAL)
    for op in ops:
        if op[0] == "add":
            name = op[1]
            if any(c["name"] == name for c in model):
                continue
            entry = {
                "name": name,
                "mac": f"70:ee:50:00:01:{op[2]:02x}",
                "ip": "10.42.0.50",
                "secure_id": "f" * 32,
                "cloud": "block",
            }
            add_camera_to(doc, entry)
            model.append(entry)
        elif op[0] == "remove":
            if not model:
                continue
            camera = model.pop(op[1] % len(model))
            cameras, index = doc.find_camera(camera["name"], None)
            doc.remove_camera(cameras, index)
        else:
            if not model:
                continue
            camera = model[op[1] % len(model)]
            key, value = op[2]
            if camera.get(key) == "<vault>":
                continue  # needs a vault password: covered elsewhere
            set_camera_in(doc, camera["name"], {key: value})
            camera[key] = value
        assert cameras_of(doc.text) == model
    # Outside the camera list nothing moved.
    head = ORIGINAL[: ORIGINAL.index("        cameras:\n")]
    assert doc.text.startswith(head)
