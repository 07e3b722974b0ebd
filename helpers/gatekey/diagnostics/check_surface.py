"""``gatekey check --surface S`` for the sibling helpers: run one as its surface does and judge it.

A surface (surfaces.py) is run without CLAUDE_HELPER_CONTEXT, with check's minimal environment,
its limit, and as many times as the app runs it back to back (a second run is the app's re-run
on its TTL: it should be a cache hit and print the same credential). Where nobody may be asked
(``no_prompt``), $BROWSER is a tripwire that records being started, and stderr is read for a
prompt: either is a breach. A JWT credential that expires before the app's next re-run is a
warning.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import time
from typing import Any

from gatekey.diagnostics.check_harness import minimal_env, run_helper
from gatekey.diagnostics.check_judge import Judgement, judge, stderr_tail
from gatekey.diagnostics.check_shapes import PARSERS, prompted
from gatekey.diagnostics.surfaces import Surface
from gatekey.token import jwt_claims

RERUN_SLOW_SHARE = 0.25  # a re-run taking this share of the limit was not answered from a cache
BROWSER_OPENED = (
    "started a browser ($BROWSER): the app runs this helper with nobody to sign in; "
    "sign in beforehand (gatekey login) and keep this run silent"
)


class Tripwire:
    """A $BROWSER that only records that it was started (POSIX shells; elsewhere: none)."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="gatekey-check-")
        self.mark = os.path.join(self.folder, "opened")
        self.path: str | None = None
        if sys.platform != "win32":
            self.path = os.path.join(self.folder, "browser")
            with open(self.path, "w", encoding="utf-8") as f:
                f.write(f"#!/bin/sh\n: > '{self.mark}'\n")
            os.chmod(self.path, stat.S_IRWXU)

    def fired(self) -> bool:
        """Whether the browser was started since the last call (and reset it)."""
        if not os.path.exists(self.mark):
            return False
        os.remove(self.mark)
        return True

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def run_surface(
    spec: Surface,
    path: str,
    profile: str | None,
    scale: float,
    ttl: float | None,
    environ: dict[str, str],
) -> list[dict[str, Any]]:
    """Each of the surface's runs as a report row (no secret in it)."""
    if spec.limit is None:
        raise ValueError(f"{spec.name} runs once per context, not as a surface")
    nominal = spec.limit
    limit = nominal * scale
    env = minimal_env("unset", profile, environ)
    trip = Tripwire() if spec.no_prompt else None
    if trip is not None and trip.path is not None:
        env["BROWSER"] = trip.path
    slow = None if spec.slow_after is None else (spec.slow_after, spec.slow_warning)
    rows: list[dict[str, Any]] = []
    first: list[str] | None = None
    try:
        for label in spec.runs:
            cap = run_helper(path, env, limit)
            j = judge("unset", cap, limit, nominal, PARSERS[spec.shape], slow)
            if trip is not None and trip.fired():
                j.problems.append(BROWSER_OPENED)
            if spec.no_prompt and cap.start_error is None:
                asked = prompted(cap.stderr.decode("utf-8", "replace"))
                if asked:
                    j.problems.append(f"{asked}; it must not prompt: nobody answers here")
            secrets = (j.payload.secrets or [j.payload.token]) if j.payload else None
            if secrets is not None and first is not None and label != spec.runs[0]:
                _judge_rerun(j, secrets, first, cap.seconds, limit)
            if secrets is not None and ttl is not None:
                _judge_lifetime(j, secrets, ttl)
            if first is None and secrets is not None:
                first = secrets
            rows.append(_row(label, j, cap, limit, nominal, scale))
    finally:
        if trip is not None:
            trip.close()
    return rows


def _judge_rerun(
    j: Judgement, secrets: list[str], first: list[str], took: float, limit: float
) -> None:
    if secrets != first:
        j.warnings.append(
            "the re-run printed another credential than the first run: a new one each run, "
            "not a cached one (each of the app's re-runs costs a fetch)"
        )
    elif took > RERUN_SLOW_SHARE * limit:
        j.warnings.append(f"the re-run took {took:.1f} s: a cached answer should be quick")


def _judge_lifetime(j: Judgement, secrets: list[str], ttl: float) -> None:
    """A JWT credential must outlive the time the app uses it without asking again."""
    now = time.time()
    for secret in secrets:
        exp = (jwt_claims(secret) or {}).get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool) and exp - now < ttl:
            left = max(exp - now, 0)
            j.warnings.append(
                f"the credential expires in {left:.0f} s, before the app runs the helper "
                f"again ({ttl:g} s): a shorter TTL, or a helper that refreshes earlier"
            )
            return


def _row(
    label: str, j: Judgement, cap: Any, limit: float, nominal: float, scale: float
) -> dict[str, Any]:
    row: dict[str, Any] = {"context": "unset", "run": label, "limit": limit}
    if scale != 1:
        row["nominal_limit"] = nominal
    output = None
    if j.payload is not None:
        output = {
            "kind": j.payload.kind,
            "token": "<redacted>",
            "token_length": len(j.payload.token),
            "headers": j.payload.headers,
        }
        if j.payload.names:
            output["names"] = j.payload.names
    row.update(
        verdict="fail" if j.problems else "warn" if j.warnings else "ok",
        exit_code=cap.code,
        seconds=None if cap.start_error else round(cap.seconds, 3),
        within_limit=None if cap.start_error else not (cap.timed_out or cap.held_open),
        output=output,
        problems=j.problems,
        warnings=j.warnings,
        stderr=stderr_tail(cap.stderr) if j.problems else None,
    )
    return row
