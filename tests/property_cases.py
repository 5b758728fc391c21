"""Hypothesis profiles and a count of the generated cases each boundary ran (shown after the run).

Property tests are reproducible by default: the `ci` profile is derandomized (a fixed seed per
test) and keeps no example database, so a CI run can never fail on a random draw. Examples
found by fuzzing are kept as explicit `@example` cases. `make fuzz` (profile `fuzz`, chosen by
$HYPOTHESIS_PROFILE) runs the same tests randomized and many times longer to find new bugs.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, settings

# Generated cases run per boundary (validate, render, discover, check, ...), summed by conftest.
COUNTS: Counter[str] = Counter()

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
# How many times more examples the fuzz profile draws than CI does.
FUZZ_FACTOR = int(os.environ.get("PRESENCE_FUZZ_FACTOR", "20"))

_COMMON = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
}
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, **_COMMON)
settings.register_profile("fuzz", derandomize=False, print_blob=True, **_COMMON)
settings.load_profile(PROFILE)

if PROFILE != "fuzz":
    # Hypothesis mixes string and number constants from the project's modules loaded so far
    # into its draws; which are loaded depends on the tests that ran before, so the same test
    # drew different cases alone and in the suite. CI draws without them: reproducible in any
    # order. The fuzz run keeps them (they find bugs).
    from hypothesis.internal.conjecture import providers

    _NO_CONSTANTS = providers.Constants()
    providers._get_local_constants = lambda: _NO_CONSTANTS


def examples(n: int) -> int:
    """N examples in CI; FUZZ_FACTOR times more in the fuzz run."""
    return n * FUZZ_FACTOR if PROFILE == "fuzz" else n


def ran(boundary: str, n: int = 1) -> None:
    """Count one generated case (or N) against BOUNDARY."""
    COUNTS[boundary] += n


def summary() -> str | None:
    if not COUNTS:
        return None
    parts = ", ".join(f"{name} {count}" for name, count in sorted(COUNTS.items()))
    return f"property-based cases run: {sum(COUNTS.values())} ({parts}; profile {PROFILE})"
