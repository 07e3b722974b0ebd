"""`gatekey check`: run a credential helper exactly as the app does, once per context, and judge it.

Each run is what Claude Desktop / Cowork does (reference/contract.md): the executable by absolute
path, no arguments, stdin at end of file (/dev/null), the filesystem root as working directory,
its own process group (killed whole at the time limit), and a minimal environment:

- PATH, HOME, USER, LOGNAME, LANG, LC_ALL, LC_CTYPE, TMPDIR, DBUS_SESSION_BUS_ADDRESS;
- every XDG_* and GATEKEY_* variable (GATEKEY_PROFILE set to -p's profile);
- the proxy variables HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY (either case);
- on Windows also SYSTEMROOT, SYSTEMDRIVE, WINDIR, COMSPEC, PATHEXT, TEMP, TMP, USERPROFILE,
  USERNAME, HOMEDRIVE, HOMEPATH, APPDATA, LOCALAPPDATA, PROGRAMDATA (Python needs them);
- CLAUDE_HELPER_CONTEXT for the context under test (absent for "unset"), plus
  CLAUDE_HELPER_MANUAL_RUN=1 with setup-test, as the app sets it.
Anything else in the shell (VAULT_ADDR, AWS_PROFILE, ...) is deliberately missing: the app is
started from the desktop, not from the admin's shell.

Time limits: mid-session-refresh 20 s (the app's clamp); otherwise gatekey's configured
``[timeouts]`` (interactive; silent for the other contexts and "unset", which without a terminal
is silent), or, for a foreign ``--helper``, the app's default inferenceCredentialHelperTimeoutSec
of 60 s. ``--timeout`` checks against another app timeout. The interactive context is skipped
unless ``--interactive`` is given: a sign-in may open a browser.

For tests only (not in --help): GATEKEY_CHECK_TIME_SCALE=0.05 multiplies every limit, so a
helper that overruns the 20 s clamp is caught in one second.

Here: the contexts, their limits and the report. check_harness.py runs a helper, check_judge.py
judges a run, report.py renders the table.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from typing import Any

from gatekey import config, context
from gatekey.diagnostics.check_harness import SCALE_ENV, minimal_env, run_helper
from gatekey.diagnostics.check_judge import judge, stderr_tail
from gatekey.errors import HelperError

CONTEXTS = (context.INTERACTIVE, context.MID_SESSION, *context.SILENT_CONTEXTS, "unset")
APP_DEFAULT_TIMEOUT = 60.0  # inferenceCredentialHelperTimeoutSec's default
APP_MID_SESSION_CLAMP = 20.0


def default_helper(family: str | None) -> str:
    """The installed executable this command belongs to (gatekey, gatekey-vault, ...)."""
    name = "gatekey" if family is None else f"gatekey-{family}"
    names = (name + ".exe", name) if sys.platform == "win32" else (name,)
    candidates = []
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) in names:
        candidates.append(argv0 if os.path.dirname(argv0) else shutil.which(argv0) or "")
    # python -m gatekey: the scripts next to this interpreter (a venv's bin), then the scheme's.
    for folder in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        candidates += [os.path.join(folder, n) for n in names]
    candidates.append(shutil.which(name) or "")
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
    raise HelperError(f"cannot find the installed {name} executable; give it with --helper PATH")


def _limits(cfg: config.Config | None, app_timeout: float | None) -> dict[str, float]:
    if app_timeout is not None:
        limits = dict.fromkeys(CONTEXTS, app_timeout)
    elif cfg is None:
        limits = dict.fromkeys(CONTEXTS, APP_DEFAULT_TIMEOUT)
    else:
        limits = dict.fromkeys(CONTEXTS, cfg.timeout("silent"))
        limits[context.INTERACTIVE] = cfg.timeout("interactive")
    # The app's own clamp, whatever the helper configured for itself (gatekey stays below it).
    limits[context.MID_SESSION] = min(app_timeout or APP_MID_SESSION_CLAMP, APP_MID_SESSION_CLAMP)
    return limits


def _time_scale() -> float:
    raw = os.environ.get(SCALE_ENV, "").strip()
    try:
        scale = float(raw) if raw else 1.0
    except ValueError:
        scale = 0.0
    if not 0 < scale <= 1:
        raise HelperError(f"{SCALE_ENV} must be a number in (0, 1] (it is for tests)")
    return scale


def check(
    family: str | None,
    profile: str | None,
    helper: str | None,
    app_timeout: float | None,
    interactive: bool,
) -> dict[str, Any]:
    """Run every context and return the report (no secret in it)."""
    notes = []
    selected = None
    cfg = None
    if helper is None:
        cfg = config.load()
        selected = config.select_profile(cfg, profile, family)
        prof = cfg.profile(selected)  # an unknown or broken profile stops here, exit 78
        notes.append(f"profile {selected} (source {prof.kind})")
        path = default_helper(family)
    else:
        path = os.path.abspath(helper)
        if path != helper:
            notes.append(f"the app needs an absolute path: checking {path}")
        if " " in helper and not os.path.exists(path):
            notes.append("the app takes the whole value as one file name: no arguments")
    scale = _time_scale()
    if scale != 1:
        notes.append(f"limits scaled by {scale:g} ({SCALE_ENV}; for tests)")
    limits = _limits(cfg, app_timeout)
    environ = dict(os.environ)
    runs = []
    for ctx in CONTEXTS:
        nominal = limits[ctx]
        row: dict[str, Any] = {"context": ctx, "limit": nominal * scale}
        if scale != 1:
            row["nominal_limit"] = nominal
        if ctx == context.INTERACTIVE and not interactive:
            row.update(verdict="skip", exit_code=None, seconds=None, within_limit=None)
            row.update(output=None, problems=[], warnings=[], stderr=None)
            row["note"] = "not run: a sign-in may open a browser; --interactive runs it"
            runs.append(row)
            continue
        env = minimal_env(ctx, profile, environ)
        cap = run_helper(path, env, nominal * scale)
        j = judge(ctx, cap, nominal * scale, nominal)
        row.update(
            verdict="fail" if j.problems else "warn" if j.warnings else "ok",
            exit_code=cap.code,
            seconds=None if cap.start_error else round(cap.seconds, 3),
            within_limit=None if cap.start_error else not (cap.timed_out or cap.held_open),
            output=None
            if j.payload is None
            else {
                "kind": j.payload.kind,
                "token": "<redacted>",
                "token_length": len(j.payload.token),
                "headers": j.payload.headers,
            },
            problems=j.problems,
            warnings=j.warnings,
            stderr=stderr_tail(cap.stderr) if j.problems else None,
        )
        runs.append(row)
    env_names = sorted(minimal_env("setup-test", profile, environ))
    return {
        "helper": path,
        "profile": selected if helper is None else profile,
        "passed": all(r["verdict"] != "fail" for r in runs),
        "time_scale": scale,
        "environment": env_names,
        "notes": notes,
        "runs": runs,
    }
