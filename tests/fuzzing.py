"""Hypothesis settings of the fuzz tests: short and seeded in CI, longer with one variable.

CI runs each fuzz test on `SITELOG_FUZZ_EXAMPLES` inputs (default 50), derandomized so a run is
reproducible. A longer, randomized hunt is one command:
`SITELOG_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests -k fuzz`.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("SITELOG_FUZZ_EXAMPLES") or 50)
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize="SITELOG_FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
