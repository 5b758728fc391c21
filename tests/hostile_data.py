"""Hypothesis strategies for hostile structured input: a known-good document (an inventory, a
cloud answer) with a few places replaced, deleted or duplicated by values of any shape, the
strings among them full of control characters, templates and near-miss forms."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

HOSTILE_STRINGS = [
    "",
    "5",
    "2.4",
    "70:ee:50:zz",
    "70:ee:50:00:00:99",
    "70:EE:50:00:00:99\n",
    "10.42.0.1/33",
    "10.42.0.300",
    "{{ undefined_var }}",
    "{{ 1 / 0 }}",
    "{{ lookup('pipe', 'id') }}",
    "{% raw %}",
    "{# x",
    "!vault",
    "wlan0\n",
    "cam\u2028home",
    "\u202eevil",
    "\x1b[2J",
    "a\x00b",
    "\U0001f3e0",
    "NOC",
    "NACamera",
    "https://vpn/restricted/10.255.1.2/9f86d081884c7d659a2feaa0c55ad015/t,,",
    "https://vpn/restricted/10.255.1.2/{{x}}/t,,",
    "https://[::1/x",
    "x" * 3000,
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=70),
    st.sampled_from(HOSTILE_STRINGS),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8) | st.sampled_from(["id", "name"]), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


@st.composite
def mutated(draw: st.DrawFn, document: Any, max_changes: int = 4) -> Any:
    """DOCUMENT (left unchanged) with 1..MAX_CHANGES places replaced, deleted or duplicated."""
    data = copy.deepcopy(document)
    for _ in range(draw(st.integers(min_value=1, max_value=max_changes))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "duplicate"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "delete" and isinstance(parent, list):
            parent.pop(path[-1])
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        else:
            parent[path[-1]] = draw(values)
    return data
