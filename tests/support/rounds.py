"""How many rounds the long reliability tests run: CI's count, or the one figures.py publishes.

``scripts/test.sh`` (CI) runs the counts the tests pass as ``ci``: each is enough to catch a
regression of what the test protects, and each test says why in a comment. ``benchmarks/
figures.py`` sets the environment variables below to the counts the README's table reports
(``LONG_ROUNDS`` there), so that the published figures come from the long runs.

- ``GATEKEY_OUTAGE_RUNS``: rapid runs during an outage (test_source_faults.py,
  test_aws_secrets_manager.py);
- ``GATEKEY_CONCURRENCY_ROUNDS``: rounds of 32 processes (test_concurrency_rounds.py);
- ``GATEKEY_FUZZ_EXAMPLES``: Hypothesis examples per property of test_bad_input.py that runs
  gatekey as a subprocess (test_config_fuzz.py's are cheap config errors: it keeps its own);
- ``GATEKEY_CRASH_ROUNDS``: SIGKILL rounds (test_crash.py here; test_crash_safety.py reads it
  itself).
"""

from __future__ import annotations

import os


def rounds(variable: str, ci: int) -> int:
    """``$variable`` if set (a positive integer), else CI's count ``ci``."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return ci
    count = int(value)
    if count < 1:
        raise ValueError(f"{variable}={value}: a count of rounds is at least 1")
    return count
